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
"""

import json as _json
import struct as _struct

__all__ = ["Record", "Output", "Config", "log", "DEFAULT_OUTPUT"]

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
