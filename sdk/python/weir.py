"""Write Weir stream processors in Python.

A processor is a module (``processor.py``) with a ``process(record, out)`` function and,
optionally, ``init(config)``::

    def process(record, out):
        out.forward(record)        # pass the record through unchanged

``weir processor build`` turns it into a WebAssembly component with componentize-py. Records
arrive in packed batches (docs/processors.md, "Packed batches"): one buffer per batch, decoded
here with ``struct``, so a batch costs one crossing of the sandbox, not one per record.

- Raise any exception in ``process`` to fail that record: what it emitted is dropped, and the
  broker applies the processor's error policy (for example the dead-letter topic, with the
  exception's text in the ``weir-error`` header). The other records of the batch go through.
- Raise in ``init`` to reject the config: the deployment fails with your message.
- ``print()`` and ``weir.log(...)`` write to the processor's log (``weir processor logs NAME``).

Keyed state (stores the deployment declares, ``"stores": ["sums"]``) and timers::

    sums = weir.Store("sums")

    def process(record, out):
        total = sums.increment(record.key, 1)       # kept per key, across restarts
        out.emit(total, key=record.key)

    def on_timer(timer, out):                       # after weir.set_timer(key, at)
        sums.delete(timer.key)

State writes commit with the outputs of the record that made them (exactly once); a record
that raises loses its writes too.
"""

import json as _json
import struct as _struct

__all__ = [
    "Record",
    "Output",
    "Config",
    "log",
    "DEFAULT_OUTPUT",
    "Store",
    "StateError",
    "Timer",
    "watermark",
    "set_timer",
    "cancel_timer",
    "EVENT_TIME",
    "PROCESSING_TIME",
]

#: ``to=`` value meaning "the processor's first output topic".
DEFAULT_OUTPUT = 0xFFFFFFFF

_U32 = _struct.Struct("<I")
_II = _struct.Struct("<II")
# OFFSET u64, TIMESTAMP i64, KEY_LEN i32, VALUE_LEN u32, HEADERS u32
_RECORD = _struct.Struct("<QqiII")
# INPUT u32, OUTPUT u32, KEY_LEN i32, VALUE_LEN u32, HEADERS u32
_OUT = _struct.Struct("<IIiII")
# Bytes from a record's start to its KEY_LEN: OFFSET and TIMESTAMP.
_TAIL_AT = 16


class Record:
    """One input record. ``key`` is bytes or None, ``value`` bytes, ``headers`` a dict of
    name (str) to bytes, ``timestamp`` milliseconds since the Unix epoch."""

    __slots__ = ("topic", "partition", "offset", "timestamp", "key", "value", "headers", "_tail")

    def __init__(self, topic, partition, offset, timestamp, key, value, headers, tail=None):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
        self._tail = tail

    def text(self):
        """The value as UTF-8 text."""
        return self.value.decode("utf-8")

    def json(self):
        """The value parsed as JSON (raises if it is not JSON: the record then fails)."""
        return _json.loads(self.value)

    def __repr__(self):
        return "Record(offset=%r, key=%r, value=%r, headers=%r)" % (self.offset, self.key, self.value, self.headers)


def _as_bytes(v, what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if what == "value":
        # Like the produce API: any other JSON value is stored as its compact JSON text.
        return _json.dumps(v, separators=(",", ":")).encode("utf-8")
    raise TypeError("%s must be bytes or str, not %s" % (what, type(v).__name__))


class Output:
    """What the current batch emits."""

    __slots__ = ("_parts", "_count", "_input")

    def __init__(self):
        self._parts = []
        self._count = 0
        self._input = 0

    def forward(self, record, to=None):
        """Emits ``record`` unchanged (key, value, headers), to output index ``to`` (default:
        the first output)."""
        tail = record._tail
        if tail is None:
            self.emit(record.value, key=record.key, headers=record.headers, to=to)
            return
        self._parts.append(_II.pack(self._input, DEFAULT_OUTPUT if to is None else to))
        self._parts.append(tail)
        self._count += 1

    def emit(self, value, key=None, headers=None, to=None):
        """Emits a record. ``value``: bytes, str (stored as UTF-8) or any other JSON value
        (stored as compact JSON); ``key``: bytes, str or None; ``headers``: a dict of name to
        bytes or str; ``to``: the output index (default: the first output)."""
        value = _as_bytes(value, "value")
        key = None if key is None else _as_bytes(key, "key")
        headers = headers or {}
        parts = self._parts
        parts.append(
            _OUT.pack(
                self._input,
                DEFAULT_OUTPUT if to is None else to,
                -1 if key is None else len(key),
                len(value),
                len(headers),
            )
        )
        if key is not None:
            parts.append(key)
        parts.append(value)
        for name, v in headers.items():
            name = name.encode("utf-8")
            v = _as_bytes(v, "a header value")
            parts.append(_U32.pack(len(name)))
            parts.append(name)
            parts.append(_U32.pack(len(v)))
            parts.append(v)
        self._count += 1


class Config(dict):
    """The processor's parameters (``--config name=value``): a dict of str to str, plus
    ``require``."""

    def require(self, name):
        """The value of ``name``; raises ValueError naming it when it is missing."""
        if name not in self:
            raise ValueError("missing config parameter '%s' (deploy with --config %s=...)" % (name, name))
        return self[name]


_LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}
_host_log = None


def log(message, level="info"):
    """Writes a line to the processor's log; ``level`` is trace, debug, info, warn or error."""
    if _host_log is None:
        print(message)
    else:
        _host_log(_LEVELS.get(level, 2), str(message))


# ---- State and timers ----

_host_state = None
_host_time = None
_Err = Exception

#: Timer domains: event time (due once the watermark reaches it) and the broker's clock.
EVENT_TIME = "event_time"
PROCESSING_TIME = "processing_time"


class StateError(Exception):
    """A state call the broker refused (a limit, a store the deployment does not declare)."""


def _call(f, *args):
    try:
        return f(*args)
    except _Err as e:
        raise StateError(getattr(e, "value", str(e))) from None


def _text(v):
    return None if v is None else v.decode("utf-8")


def _parsed(v):
    return None if v is None else _json.loads(v)


class Store:
    """A keyed state store the deployment declares (``"stores": ["name"]``). Keys are bytes
    or str; values are stored as bytes (str as UTF-8, other JSON values as compact JSON, as
    ``Output.emit`` does)."""

    __slots__ = ("name", "_handle")

    def __init__(self, name):
        self.name = name
        self._handle = None

    def _h(self):
        if self._handle is None:
            if _host_state is None:
                raise StateError("state is not available here")
            self._handle = _call(_host_state.open, self.name)
        return self._handle

    def get(self, key):
        """The value of ``key`` (bytes), or None."""
        return _host_state.get(self._h(), _as_bytes(key, "key"))

    def get_many(self, keys):
        """The values of ``keys`` in one host call: a list of bytes or None, in their order."""
        return list(_host_state.get_many(self._h(), [_as_bytes(k, "key") for k in keys]))

    def get_text(self, key):
        """The value as text, or None."""
        return _text(self.get(key))

    def get_json(self, key):
        """The value parsed as JSON, or None."""
        return _parsed(self.get(key))

    def set(self, key, value):
        """Sets ``key`` to ``value``; raises StateError past the deployment's state limits."""
        _call(_host_state.set, self._h(), _as_bytes(key, "key"), _as_bytes(value, "value"))

    def delete(self, key):
        """Removes ``key``."""
        _call(_host_state.delete, self._h(), _as_bytes(key, "key"))

    def increment(self, key, delta=1):
        """Adds ``delta`` to the integer at ``key`` (absent: 0); returns the new value."""
        return _call(_host_state.increment, self._h(), _as_bytes(key, "key"), int(delta))

    def scan(self, start=b"", end=None, limit=100):
        """Up to ``limit`` ``(key, value)`` pairs with ``start <= key < end``, in key order.
        One call gives at most 16 MiB of keys and values, so fewer than ``limit`` is not the
        end: scan on from the last key + ``b"\\0"`` until the answer is empty."""
        end = None if end is None else _as_bytes(end, "end")
        return list(_host_state.scan(self._h(), _as_bytes(start, "start"), end, int(limit)))


_host_tables = None


class Table:
    """A table the deployment declares (``"tables": ["customers"]``): a topic read as the
    latest value of each key, found wherever the key's records went. Read-only."""

    __slots__ = ("name", "_handle")

    def __init__(self, name):
        self.name = name
        self._handle = None

    def _h(self):
        if self._handle is None:
            if _host_tables is None:
                raise StateError("tables are not available here")
            self._handle = _call(_host_tables.open, self.name)
        return self._handle

    def lookup(self, key):
        """The latest value of ``key`` (bytes), or None."""
        return _host_tables.lookup(self._h(), _as_bytes(key, "key"))

    def lookup_many(self, keys):
        """The values of ``keys`` in one host call: a list of bytes or None, in their order."""
        return list(_host_tables.lookup_many(self._h(), [_as_bytes(k, "key") for k in keys]))

    def lookup_text(self, key):
        """The value as text, or None."""
        return _text(self.lookup(key))

    def lookup_json(self, key):
        """The value parsed as JSON, or None."""
        return _parsed(self.lookup(key))


class Timer:
    """A timer that came due: ``key`` (bytes), ``at`` (ms), ``domain`` (EVENT_TIME or
    PROCESSING_TIME)."""

    __slots__ = ("key", "at", "domain")

    def __init__(self, key, at, domain):
        self.key = key
        self.at = at
        self.domain = domain


def watermark():
    """The task's watermark: the largest record timestamp processed (ms), or None."""
    return None if _host_time is None else _host_time.watermark()


def _domain(domain):
    if domain not in (EVENT_TIME, PROCESSING_TIME):
        raise ValueError("domain must be weir.EVENT_TIME or weir.PROCESSING_TIME")
    return _host_time.Domain(0 if domain == EVENT_TIME else 1)


def set_timer(key, at, domain=EVENT_TIME):
    """Sets a timer for ``key`` at ``at`` (ms since the epoch); it comes back to the module's
    ``on_timer(timer, out)``."""
    _call(_host_time.set_timer, _as_bytes(key, "key"), int(at), _domain(domain))


def cancel_timer(key, at, domain=EVENT_TIME):
    """Cancels that timer."""
    _host_time.cancel_timer(_as_bytes(key, "key"), int(at), _domain(domain))


def _run_timers(on_timer, batch):
    """Runs ``on_timer`` over a packed batch of fired timers; returns the packed output."""

    def each(record, out):
        if on_timer is not None:
            domain = PROCESSING_TIME if record.value == b"\x01" else EVENT_TIME
            on_timer(Timer(record.key or b"", record.timestamp, domain), out)

    return _run(each, batch)


def _run(process, batch):
    """Runs ``process`` over one packed batch and returns the packed output (bytes)."""
    version, topic_len = _II.unpack_from(batch, 0)
    if version != 1:
        raise ValueError("packed batch version %d; this SDK reads version 1" % version)
    pos = 8 + topic_len
    topic = batch[8:pos].decode("utf-8")
    partition, count = _II.unpack_from(batch, pos)
    pos += 8
    out = Output()
    parts = out._parts
    failed = []
    head = _RECORD.unpack_from
    u32 = _U32.unpack_from
    for index in range(count):
        offset, timestamp, key_len, value_len, header_count = head(batch, pos)
        start = pos + _TAIL_AT
        pos += 28
        if key_len >= 0:
            key = batch[pos : pos + key_len]
            pos += key_len
        else:
            key = None
        value = batch[pos : pos + value_len]
        pos += value_len
        headers = {}
        for _ in range(header_count):
            (n,) = u32(batch, pos)
            name = batch[pos + 4 : pos + 4 + n].decode("utf-8")
            pos += 4 + n
            (n,) = u32(batch, pos)
            headers[name] = batch[pos + 4 : pos + 4 + n]
            pos += 4 + n
        record = Record(topic, partition, offset, timestamp, key, value, headers, batch[start:pos])
        mark = len(parts)
        emitted = out._count
        out._input = index
        try:
            process(record, out)
        except Exception as e:  # noqa: BLE001 - any failure of user code fails that record
            del parts[mark:]
            out._count = emitted
            failed.append((index, "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__))
    tail = [_U32.pack(len(failed))]
    for index, message in failed:
        message = message.encode("utf-8")
        tail.append(_II.pack(index, len(message)))
        tail.append(message)
    return b"".join([_U32.pack(out._count)] + parts + tail)
