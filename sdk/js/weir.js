// Write Weir stream processors in JavaScript.
//
// A processor is a module (processor.js) that exports `process(record, out)` and, optionally,
// `init(config)`:
//
//     export function process(record, out) {
//       out.forward(record);          // pass the record through unchanged
//     }
//
// `weir processor build` bundles it with this file and makes a component with componentize-qjs
// (QuickJS). Records arrive in packed batches (docs/processors.md, "Packed batches"): one
// buffer per batch, read here with a DataView, so a batch crosses the sandbox once.
//
// - Throw in `process` to fail that record: what it emitted is dropped and the broker applies
//   the error policy to it alone (the dead-letter topic gets the message in `weir-error`).
// - Throw in `init` to reject the config: the deployment fails with your message.
// - `console.log` (and `.info`, `.warn`, `.error`, `.debug`) and `weir.log(message, level)`
//   write to the processor's log (`weir processor logs NAME`).
//
// Keyed state (stores the deployment declares, `"stores": ["seen"]`) and timers:
//
//     const seen = weir.store("seen");
//     export function process(record, out) {
//       if (seen.get(record.key) !== null) return;       // a duplicate: drop it
//       seen.set(record.key, "1");
//       weir.setTimer(record.key, Date.now() + 60000, "processing-time");
//       out.forward(record);
//     }
//     export function onTimer(timer, out) { seen.delete(timer.key); }
//
// Writes commit with the outputs of the record that made them (exactly once); a record that
// throws loses its writes too.
//
// This module is the global `weir` (loaded before the processor, so usable anywhere in it).
// QuickJS has no `console`, `TextEncoder` or `TextDecoder`: this module provides them (UTF-8).

/** `to` value meaning "the processor's first output topic". */
export const DEFAULT_OUTPUT = 0xffffffff;

// ---- UTF-8 ----

/** UTF-8 bytes of a string. */
export function utf8Encode(s) {
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 63);
    } else if (c < 0x10000) {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    } else {
      out[n++] = 0xf0 | (c >> 18);
      out[n++] = 0x80 | ((c >> 12) & 63);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    }
  }
  return out.subarray(0, n);
}

/** The string in UTF-8 `bytes` (invalid sequences become U+FFFD). */
export function utf8Decode(bytes) {
  let s = "";
  let chunk = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let c = 0xfffd;
    let n = 1;
    if (b < 0x80) {
      c = b;
    } else if (b >= 0xc2 && b < 0xe0 && i + 1 < bytes.length) {
      c = ((b & 31) << 6) | (bytes[i + 1] & 63);
      n = 2;
    } else if (b >= 0xe0 && b < 0xf0 && i + 2 < bytes.length) {
      c = ((b & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63);
      n = 3;
    } else if (b >= 0xf0 && b < 0xf5 && i + 3 < bytes.length) {
      c = ((b & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63);
      n = 4;
    }
    i += n;
    if (c >= 0x10000) {
      c -= 0x10000;
      chunk.push(0xd800 + (c >> 10), 0xdc00 + (c & 1023));
    } else {
      chunk.push(c);
    }
    if (chunk.length > 4096) {
      s += String.fromCharCode.apply(null, chunk);
      chunk = [];
    }
  }
  return s + String.fromCharCode.apply(null, chunk);
}

if (typeof globalThis.TextEncoder === "undefined") {
  globalThis.TextEncoder = class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(s = "") {
      return utf8Encode(String(s));
    }
  };
}
if (typeof globalThis.TextDecoder === "undefined") {
  globalThis.TextDecoder = class TextDecoder {
    get encoding() {
      return "utf-8";
    }
    decode(bytes) {
      return bytes ? utf8Decode(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)) : "";
    }
  };
}

// ---- Logging ----

let hostLog = null;

/** Connects `log` to the host (the generated entry module calls it). */
export function setHostLog(f) {
  hostLog = f;
}

const LEVELS = { trace: "trace", debug: "debug", info: "info", warn: "warn", error: "error" };

/** Writes a line to the processor's log; `level` is trace, debug, info, warn or error. */
export function log(message, level = "info") {
  if (hostLog) hostLog(LEVELS[level] || "info", String(message));
}

// ---- Records ----

/** One input record. `key` is a Uint8Array or null, `value` a Uint8Array, `headers` an object
 * of name to Uint8Array; `timestamp` is milliseconds since the Unix epoch. */
export class Record {
  constructor(topic, partition, offset, timestamp, key, value, headers, tail) {
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestamp = timestamp;
    this.key = key;
    this.value = value;
    this.headers = headers;
    this._tail = tail;
  }

  /** The value as text. */
  text() {
    return utf8Decode(this.value);
  }

  /** The value parsed as JSON (throws if it is not JSON: the record then fails). */
  json() {
    return JSON.parse(utf8Decode(this.value));
  }

  /** The key as text, or null. */
  keyText() {
    return this.key === null ? null : utf8Decode(this.key);
  }

  /** A header's value as text, or null. */
  header(name) {
    const v = this.headers[name];
    return v === undefined ? null : utf8Decode(v);
  }
}

function asBytes(v, what) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return utf8Encode(v);
  if (what === "value") return utf8Encode(JSON.stringify(v));
  throw new TypeError(`${what} must be a string or a Uint8Array`);
}

/** What the current batch emits. */
export class Output {
  constructor(capacity) {
    this.buf = new Uint8Array(Math.max(capacity, 64));
    this.view = new DataView(this.buf.buffer);
    this.pos = 4;
    this.count = 0;
    this.input = 0;
  }

  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u32(v) {
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  bytes(b) {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Emits `record` unchanged (key, value, headers) to output index `to` (default: the first). */
  forward(record, to = DEFAULT_OUTPUT) {
    if (!record._tail) {
      this.emit(record.value, { key: record.key, headers: record.headers, to });
      return;
    }
    this.reserve(8 + record._tail.length);
    this.u32(this.input);
    this.u32(to);
    this.bytes(record._tail);
    this.count++;
  }

  /** Emits a record. `value`: a string (stored as UTF-8), a Uint8Array, or any other JSON value
   * (stored as compact JSON). Options: `key` (string or Uint8Array), `headers` (an object of
   * name to string or Uint8Array), `to` (the output index; default: the first). */
  emit(value, { key = null, headers = null, to = DEFAULT_OUTPUT } = {}) {
    const v = asBytes(value, "value");
    const k = key === null || key === undefined ? null : asBytes(key, "key");
    const names = headers ? Object.keys(headers) : [];
    this.reserve(20 + v.length + (k ? k.length : 0));
    this.u32(this.input);
    this.u32(to);
    this.view.setInt32(this.pos, k ? k.length : -1, true);
    this.pos += 4;
    this.u32(v.length);
    this.u32(names.length);
    if (k) this.bytes(k);
    this.bytes(v);
    for (const name of names) {
      const n = utf8Encode(name);
      const hv = asBytes(headers[name], "a header value");
      this.reserve(8 + n.length + hv.length);
      this.u32(n.length);
      this.bytes(n);
      this.u32(hv.length);
      this.bytes(hv);
    }
    this.count++;
  }
}

// ---- State and timers ----

let host = null;

/** Connects the state, time and table calls to the host (the generated entry module calls it). */
export function setHost(state, time, tables) {
  host = { state, time, tables };
}

function hostState() {
  if (!host) throw new Error("state is not available here");
  return host.state;
}

/** A keyed state store the deployment declares (`"stores": ["name"]`). Keys and values are
 * strings (UTF-8) or Uint8Arrays; reads give Uint8Arrays (or the `*Text`/`*Json` forms). */
export class Store {
  constructor(name) {
    this.name = name;
    this.handle = null;
  }

  h() {
    if (this.handle === null) this.handle = hostState().open(this.name);
    return this.handle;
  }

  /** The value of `key` as a Uint8Array, or null. */
  get(key) {
    return hostState().get(this.h(), asBytes(key, "key"));
  }

  /** The values of `keys` (an array) in one host call: Uint8Arrays or nulls, in their order. */
  getMany(keys) {
    return hostState().getMany(this.h(), keys.map((k) => asBytes(k, "key")));
  }

  /** The value as text, or null. */
  getText(key) {
    const v = this.get(key);
    return v === null ? null : utf8Decode(v);
  }

  /** The value parsed as JSON, or null. */
  getJson(key) {
    const v = this.get(key);
    return v === null ? null : JSON.parse(utf8Decode(v));
  }

  /** Sets `key` to `value` (a string, a Uint8Array, or any JSON value, stored as compact JSON). */
  set(key, value) {
    hostState().set(this.h(), asBytes(key, "key"), asBytes(value, "value"));
  }

  /** Removes `key`. */
  delete(key) {
    hostState().delete(this.h(), asBytes(key, "key"));
  }

  /** Adds `delta` (default 1) to the integer at `key` (absent: 0) and returns the new value. */
  increment(key, delta = 1) {
    return Number(hostState().increment(this.h(), asBytes(key, "key"), int64(delta, "delta")));
  }

  /** Up to `limit` `[key, value]` pairs (Uint8Arrays) with `start <= key < end`, in key order.
   * One call gives at most 16 MiB of keys and values, so fewer than `limit` is not the end: scan
   * on from the last key with a 0 byte appended until the answer is empty. */
  scan(start = "", end = null, limit = 100) {
    const e = end === null || end === undefined ? null : asBytes(end, "end");
    return hostState().scan(this.h(), asBytes(start, "start"), e, limit);
  }
}

const stores = new Map();

/** The declared store `name` (one object per name). */
export function store(name) {
  let s = stores.get(name);
  if (!s) {
    s = new Store(name);
    stores.set(name, s);
  }
  return s;
}

/** A table the deployment declares (`"tables": ["customers"]`): a topic read as the latest
 * value of each key, found wherever the key's records went. Read-only. */
export class Table {
  constructor(name) {
    this.name = name;
    this.handle = null;
  }

  h() {
    if (!host || !host.tables) throw new Error("tables are not available here");
    if (this.handle === null) this.handle = host.tables.open(this.name);
    return this.handle;
  }

  /** The latest value of `key` as a Uint8Array, or null. */
  lookup(key) {
    const v = host.tables.lookup(this.h(), asBytes(key, "key"));
    return v === undefined ? null : v;
  }

  /** The values of `keys` (an array) in one host call: Uint8Arrays or nulls, in their order. */
  lookupMany(keys) {
    return host.tables.lookupMany(this.h(), keys.map((k) => asBytes(k, "key")));
  }

  /** The value as text, or null. */
  lookupText(key) {
    const v = this.lookup(key);
    return v === null ? null : utf8Decode(v);
  }

  /** The value parsed as JSON, or null. */
  lookupJson(key) {
    const v = this.lookup(key);
    return v === null ? null : JSON.parse(utf8Decode(v));
  }
}

const tables = new Map();

/** The declared table `name` (one object per name). */
export function table(name) {
  let t = tables.get(name);
  if (!t) {
    t = new Table(name);
    tables.set(name, t);
  }
  return t;
}

/** The task's watermark: the largest record timestamp processed (ms), or null. */
export function watermark() {
  const w = host ? host.time.watermark() : null;
  return w === null || w === undefined ? null : Number(w);
}

/** A 64-bit integer argument as the host takes it (a whole Number), from a Number or a
 * BigInt; anything else is a TypeError that names the argument. */
function int64(v, what) {
  if (typeof v === "bigint") return Number(v);
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`${what} must be a number, got ${v}`);
  return Math.trunc(v);
}

/** Sets a timer for `key` at `at` (ms since the epoch): `"event-time"` (default: due when the
 * watermark reaches it) or `"processing-time"` (the broker's clock). It comes back to the
 * processor's `onTimer(timer, out)` with `timer.key` (Uint8Array), `timer.keyText()`,
 * `timer.at` and `timer.domain`. */
export function setTimer(key, at, domain = "event-time") {
  host.time.setTimer(asBytes(key, "key"), int64(at, "at"), domain);
}

/** Cancels that timer. */
export function cancelTimer(key, at, domain = "event-time") {
  host.time.cancelTimer(asBytes(key, "key"), int64(at, "at"), domain);
}

/** A timer that came due. */
export class Timer {
  constructor(key, at, domain) {
    this.key = key;
    this.at = at;
    this.domain = domain;
  }

  keyText() {
    return utf8Decode(this.key);
  }
}

/** Runs `onTimer` over a packed batch of fired timers and returns the packed output. */
export function runTimers(onTimer, batch) {
  return run((record, out) => {
    if (typeof onTimer !== "function") return;
    const domain = record.value[0] === 1 ? "processing-time" : "event-time";
    onTimer(new Timer(record.key || new Uint8Array(0), record.timestamp, domain), out);
  }, batch);
}

/** The processor's parameters (`--config name=value`): an object of name to string. */
export function readConfig(pairs) {
  const config = {};
  for (const [name, value] of pairs) config[name] = value;
  return config;
}

const show = (v) => (typeof v === "string" ? v : v instanceof Error ? `${v.name}: ${v.message}` : JSON.stringify(v));
const logAt = (level) => (...args) => log(args.map(show).join(" "), level);
if (typeof globalThis.console === "undefined") {
  globalThis.console = {
    log: logAt("info"),
    info: logAt("info"),
    debug: logAt("debug"),
    trace: logAt("trace"),
    warn: logAt("warn"),
    error: logAt("error"),
  };
}

/** Runs `process` over one packed batch and returns the packed output. */
export function run(process, batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  if (view.getUint32(0, true) !== 1) throw new Error("packed batch version is not 1");
  const topicLen = view.getUint32(4, true);
  let pos = 8 + topicLen;
  const topic = utf8Decode(batch.subarray(8, pos));
  const partition = view.getUint32(pos, true);
  const count = view.getUint32(pos + 4, true);
  pos += 8;
  const out = new Output(batch.length + count * 8 + 64);
  const failures = [];
  for (let i = 0; i < count; i++) {
    const offset = view.getUint32(pos, true) + view.getUint32(pos + 4, true) * 4294967296;
    const timestamp = view.getUint32(pos + 8, true) + view.getInt32(pos + 12, true) * 4294967296;
    const keyLen = view.getInt32(pos + 16, true);
    const valueLen = view.getUint32(pos + 20, true);
    const headerCount = view.getUint32(pos + 24, true);
    const start = pos + 16;
    pos += 28;
    let key = null;
    if (keyLen >= 0) {
      key = batch.subarray(pos, pos + keyLen);
      pos += keyLen;
    }
    const value = batch.subarray(pos, pos + valueLen);
    pos += valueLen;
    const headers = {};
    for (let h = 0; h < headerCount; h++) {
      const n = view.getUint32(pos, true);
      const name = utf8Decode(batch.subarray(pos + 4, pos + 4 + n));
      pos += 4 + n;
      const m = view.getUint32(pos, true);
      headers[name] = batch.subarray(pos + 4, pos + 4 + m);
      pos += 4 + m;
    }
    const record = new Record(topic, partition, offset, timestamp, key, value, headers, batch.subarray(start, pos));
    const markPos = out.pos;
    const markCount = out.count;
    out.input = i;
    try {
      process(record, out);
    } catch (e) {
      out.pos = markPos;
      out.count = markCount;
      failures.push([i, utf8Encode(e instanceof Error ? `${e.name}: ${e.message}` : String(e))]);
    }
  }
  out.view.setUint32(0, out.count, true);
  out.reserve(4);
  out.u32(failures.length);
  for (const [i, message] of failures) {
    out.reserve(8 + message.length);
    out.u32(i);
    out.u32(message.length);
    out.bytes(message);
  }
  return out.buf.slice(0, out.pos);
}

globalThis.weir = {
  DEFAULT_OUTPUT,
  Output,
  Record,
  Store,
  Table,
  Timer,
  cancelTimer,
  log,
  setTimer,
  store,
  table,
  utf8Decode,
  utf8Encode,
  watermark,
};
