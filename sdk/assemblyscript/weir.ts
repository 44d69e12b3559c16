// weir: write Weir stream processors in AssemblyScript.
//
// A processor module exports `process(record, out)` and, optionally, `init(config)`:
//
//     import { Config, Output, Record } from "weir";
//
//     export function process(record: Record, out: Output): string | null {
//       out.forward(record);   // pass the record through unchanged
//       return null;           // null: done; a message: this record failed
//     }
//
// `weir processor build` compiles it with this library into a component of the world
// `packed-processor` (wit/processor.wit). AssemblyScript emits a core module and no tool
// generates its canonical-ABI glue, so this file holds it too: `cabi_realloc`, the exports
// and their post-return functions, over the packed batch layout (docs/processors.md).
// Records are read in place from the batch; nothing is allocated per record unless the
// processor asks for a copy (`value()`, `valueString()`).

// ---- The host ----

@external("weir:processor/host@0.2.0", "log")
declare function hostLog(level: i32, ptr: usize, len: usize): void;

/** Log levels of `log`. */
export enum Level {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
}

/** Writes a line to the processor's log (`weir processor logs NAME`). */
export function log(level: Level, message: string): void {
  const bytes = String.UTF8.encode(message);
  hostLog(level, changetype<usize>(bytes), bytes.byteLength);
}

/** The `output` value meaning "the processor's first output topic". */
export const DEFAULT_OUTPUT: u32 = 0xffffffff;

// ---- Config ----

/** The processor's parameters, as given at deploy time (`--config name=value`). */
export class Config {
  names: string[] = [];
  values: string[] = [];

  /** The value of parameter `name`, or null. */
  get(name: string): string | null {
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] == name) return this.values[i];
    }
    return null;
  }
}

// ---- Records ----

/** One input record, read in place from the batch: valid while `process` runs. */
export class Record {
  topic: string = "";
  partition: u32 = 0;
  offset: u64 = 0;
  /** Milliseconds since the Unix epoch. */
  timestamp: i64 = 0;
  /** Where the record's key is in memory (0 when it has none) and its length. */
  keyPtr: usize = 0;
  keyLen: i32 = -1;
  /** Where the value is in memory, and its length. */
  valuePtr: usize = 0;
  valueLen: u32 = 0;
  headerCount: u32 = 0;
  headersPtr: usize = 0;
  // The record's packed bytes from KEY_LEN to its end, which `forward` copies as they are.
  tailPtr: usize = 0;
  tailLen: usize = 0;

  /** Whether the record has a key. */
  hasKey(): bool {
    return this.keyLen >= 0;
  }

  /** A copy of the key, or null. */
  key(): Uint8Array | null {
    return this.keyLen < 0 ? null : copyOut(this.keyPtr, <usize>this.keyLen);
  }

  /** The key as UTF-8 text, or null. */
  keyString(): string | null {
    return this.keyLen < 0 ? null : String.UTF8.decodeUnsafe(this.keyPtr, <usize>this.keyLen);
  }

  /** A copy of the value. */
  value(): Uint8Array {
    return copyOut(this.valuePtr, this.valueLen);
  }

  /** The value as UTF-8 text. */
  valueString(): string {
    return String.UTF8.decodeUnsafe(this.valuePtr, this.valueLen);
  }

  /** All headers, name to UTF-8 text (a copy). */
  headers(): Map<string, string> {
    const out = new Map<string, string>();
    let at = this.headersPtr;
    for (let i: u32 = 0; i < this.headerCount; i++) {
      const n = load<u32>(at);
      const name = String.UTF8.decodeUnsafe(at + 4, n);
      at += 4 + n;
      const m = load<u32>(at);
      out.set(name, String.UTF8.decodeUnsafe(at + 4, m));
      at += 4 + m;
    }
    return out;
  }

  /** The value of the first header named `name` as UTF-8 text, or null. */
  header(name: string): string | null {
    let at = this.headersPtr;
    for (let i: u32 = 0; i < this.headerCount; i++) {
      const n = load<u32>(at);
      const key = String.UTF8.decodeUnsafe(at + 4, n);
      at += 4 + n;
      const m = load<u32>(at);
      if (key == name) return String.UTF8.decodeUnsafe(at + 4, m);
      at += 4 + m;
    }
    return null;
  }
}

function copyOut(ptr: usize, len: usize): Uint8Array {
  const out = new Uint8Array(<i32>len);
  memory.copy(out.dataStart, ptr, len);
  return out;
}

// ---- Output ----

/** What one batch emits. */
export class Output {
  ptr: usize = 0;
  len: usize = 0;
  cap: usize = 0;
  count: u32 = 0;
  input: u32 = 0;

  reserve(more: usize): void {
    if (this.len + more <= this.cap) return;
    let cap = this.cap ? this.cap * 2 : 256;
    while (cap < this.len + more) cap *= 2;
    this.ptr = this.ptr ? heap.realloc(this.ptr, cap) : heap.alloc(cap);
    this.cap = cap;
  }

  private u32(v: u32): void {
    store<u32>(this.ptr + this.len, v);
    this.len += 4;
  }

  private bytes(ptr: usize, len: usize): void {
    memory.copy(this.ptr + this.len, ptr, len);
    this.len += len;
  }

  /** Emits `record` unchanged (key, value, headers) to output `to` (default: the first). */
  forward(record: Record, to: u32 = DEFAULT_OUTPUT): void {
    this.reserve(8 + record.tailLen);
    this.u32(this.input);
    this.u32(to);
    this.bytes(record.tailPtr, record.tailLen);
    this.count++;
  }

  /** Emits a record with `value`, and optionally a key, headers and an output index. */
  emit(
    value: Uint8Array,
    key: Uint8Array | null = null,
    headers: Map<string, string> | null = null,
    to: u32 = DEFAULT_OUTPUT,
  ): void {
    this.raw(value.dataStart, value.byteLength, key ? key.dataStart : 0, key ? key.byteLength : -1, headers, to);
  }

  /** Like `emit`, with text (stored as UTF-8). */
  emitString(value: string, key: string | null = null, headers: Map<string, string> | null = null, to: u32 = DEFAULT_OUTPUT): void {
    const v = String.UTF8.encode(value);
    if (key === null) {
      this.raw(changetype<usize>(v), v.byteLength, 0, -1, headers, to);
    } else {
      const k = String.UTF8.encode(key);
      this.raw(changetype<usize>(v), v.byteLength, changetype<usize>(k), k.byteLength, headers, to);
    }
  }

  private raw(valuePtr: usize, valueLen: i32, keyPtr: usize, keyLen: i32, headers: Map<string, string> | null, to: u32): void {
    this.reserve(20 + <usize>valueLen + <usize>max(keyLen, 0));
    this.u32(this.input);
    this.u32(to);
    this.u32(<u32>keyLen);
    this.u32(<u32>valueLen);
    const names = headers ? headers.keys() : new Array<string>(0);
    this.u32(names.length);
    if (keyLen > 0) this.bytes(keyPtr, <usize>keyLen);
    this.bytes(valuePtr, <usize>valueLen);
    for (let i = 0; i < names.length; i++) {
      const n = String.UTF8.encode(names[i]);
      const v = String.UTF8.encode(headers!.get(names[i]));
      this.reserve(8 + <usize>n.byteLength + <usize>v.byteLength);
      this.u32(n.byteLength);
      this.bytes(changetype<usize>(n), n.byteLength);
      this.u32(v.byteLength);
      this.bytes(changetype<usize>(v), v.byteLength);
    }
    this.count++;
  }
}

// ---- The canonical ABI glue ----

// Return areas of the two exports: a result's discriminant (u8) at 0, then its payload
// (ok: list pointer and length; err: message pointer and length, option<u32> record).
const INIT_RET: usize = memory.data(16, 8);
const PROCESS_RET: usize = memory.data(24, 8);

/** `cabi_realloc`: the host allocates the arguments it passes in through this. */
export function cabi_realloc(old: usize, oldSize: usize, align: usize, newSize: usize): usize {
  return old ? heap.realloc(old, newSize) : heap.alloc(newSize);
}

function putString(at: usize, message: string): void {
  const bytes = String.UTF8.encode(message);
  const ptr = heap.alloc(bytes.byteLength);
  memory.copy(ptr, changetype<usize>(bytes), bytes.byteLength);
  store<usize>(at, ptr);
  store<usize>(at + 4, bytes.byteLength);
}

/** Reads the config the host passed (`list<tuple<string, string>>`) and frees it. */
export function readConfig(ptr: usize, len: usize): Config {
  const config = new Config();
  for (let i: usize = 0; i < len; i++) {
    const at = ptr + i * 16;
    config.names.push(String.UTF8.decodeUnsafe(load<usize>(at), load<usize>(at + 4)));
    config.values.push(String.UTF8.decodeUnsafe(load<usize>(at + 8), load<usize>(at + 12)));
    heap.free(load<usize>(at));
    heap.free(load<usize>(at + 8));
  }
  if (ptr) heap.free(ptr);
  return config;
}

/** The return area of `init` for `error` (null: accepted). */
export function initResult(error: string | null): usize {
  if (error === null) {
    store<u8>(INIT_RET, 0);
  } else {
    store<u8>(INIT_RET, 1);
    putString(INIT_RET + 4, error);
  }
  return INIT_RET;
}

export function weir_post_init(ret: usize): void {
  if (load<u8>(ret)) heap.free(load<usize>(ret + 4));
}

export function weir_post_process_packed(ret: usize): void {
  heap.free(load<usize>(ret + 4));
}

const record = new Record();
const failures = new Output();

/** Decodes the packed batch at `ptr`, calls `process` per record, returns the result area. */
export function processBatch(ptr: usize, len: usize, process: (r: Record, o: Output) => string | null): usize {
  const end = ptr + len;
  if (len < 16 || load<u32>(ptr) != 1) {
    heap.free(ptr);
    return batchError("malformed packed batch header (this SDK reads version 1)");
  }
  const topicLen = load<u32>(ptr + 4);
  let at = ptr + 8 + topicLen;
  if (at + 8 > end) {
    heap.free(ptr);
    return batchError("malformed packed batch header");
  }
  record.topic = String.UTF8.decodeUnsafe(ptr + 8, topicLen);
  record.partition = load<u32>(at);
  const count = load<u32>(at + 4);
  at += 8;
  const out = new Output();
  out.reserve(len + <usize>count * 8 + 16);
  store<u32>(out.ptr, 0);
  out.len = 4;
  failures.len = 0;
  failures.count = 0;
  for (let i: u32 = 0; i < count; i++) {
    if (at + 28 > end) return badRecord(ptr, out, i);
    const start = at;
    record.offset = load<u64>(at);
    record.timestamp = load<i64>(at + 8);
    record.keyLen = load<i32>(at + 16);
    record.valueLen = load<u32>(at + 20);
    record.headerCount = load<u32>(at + 24);
    at += 28;
    if (record.keyLen >= 0) {
      record.keyPtr = at;
      at += <usize>record.keyLen;
    } else {
      record.keyPtr = 0;
    }
    record.valuePtr = at;
    at += record.valueLen;
    record.headersPtr = at;
    for (let h: u32 = 0; h < record.headerCount && at + 4 <= end; h++) {
      at += 4 + <usize>load<u32>(at);
      if (at + 4 > end) break;
      at += 4 + <usize>load<u32>(at);
    }
    if (at > end || record.keyLen < -1) return badRecord(ptr, out, i);
    record.tailPtr = start + 16;
    record.tailLen = at - record.tailPtr;
    const markLen = out.len;
    const markCount = out.count;
    out.input = i;
    const message = process(record, out);
    if (message !== null) {
      out.len = markLen;
      out.count = markCount;
      const bytes = String.UTF8.encode(message);
      failures.reserve(8 + <usize>bytes.byteLength);
      store<u32>(failures.ptr + failures.len, i);
      store<u32>(failures.ptr + failures.len + 4, bytes.byteLength);
      memory.copy(failures.ptr + failures.len + 8, changetype<usize>(bytes), bytes.byteLength);
      failures.len += 8 + <usize>bytes.byteLength;
      failures.count++;
    }
  }
  heap.free(ptr);
  store<u32>(out.ptr, out.count);
  out.reserve(4 + failures.len);
  store<u32>(out.ptr + out.len, failures.count);
  memory.copy(out.ptr + out.len + 4, failures.ptr, failures.len);
  out.len += 4 + failures.len;
  store<u8>(PROCESS_RET, 0);
  store<usize>(PROCESS_RET + 4, out.ptr);
  store<usize>(PROCESS_RET + 8, out.len);
  return PROCESS_RET;
}

function badRecord(batch: usize, out: Output, index: u32): usize {
  heap.free(batch);
  heap.free(out.ptr);
  const ret = batchError("malformed packed record");
  store<u8>(PROCESS_RET + 12, 1);
  store<u32>(PROCESS_RET + 16, index);
  return ret;
}

function batchError(message: string): usize {
  store<u8>(PROCESS_RET, 1);
  putString(PROCESS_RET + 4, message);
  store<u8>(PROCESS_RET + 12, 0);
  // The post-return frees the message through the same slot as an ok list.
  return PROCESS_RET;
}

// ---- Keyed state and timers ----
//
// Imports lowered by hand, as the canonical ABI lays them out: lists and strings as (pointer,
// length); results and options come back through a return area the caller passes last.

@external("weir:processor/state@0.2.0", "open")
declare function hostOpen(namePtr: usize, nameLen: usize, ret: usize): void;
@external("weir:processor/state@0.2.0", "get")
declare function hostGet(store: u32, keyPtr: usize, keyLen: usize, ret: usize): void;
@external("weir:processor/state@0.2.0", "get-many")
declare function hostGetMany(store: u32, keysPtr: usize, keysLen: usize, ret: usize): void;
@external("weir:processor/state@0.2.0", "scan")
declare function hostScan(
  store: u32,
  startPtr: usize,
  startLen: usize,
  hasEnd: u32,
  endPtr: usize,
  endLen: usize,
  limit: u32,
  ret: usize,
): void;
@external("weir:processor/state@0.2.0", "set")
declare function hostSet(store: u32, keyPtr: usize, keyLen: usize, valuePtr: usize, valueLen: usize, ret: usize): void;
@external("weir:processor/state@0.2.0", "delete")
declare function hostDelete(store: u32, keyPtr: usize, keyLen: usize, ret: usize): void;
@external("weir:processor/state@0.2.0", "increment")
declare function hostIncrement(store: u32, keyPtr: usize, keyLen: usize, delta: i64, ret: usize): void;
@external("weir:processor/tables@0.2.0", "open")
declare function hostTableOpen(namePtr: usize, nameLen: usize, ret: usize): void;
@external("weir:processor/tables@0.2.0", "lookup")
declare function hostTableLookup(table: u32, keyPtr: usize, keyLen: usize, ret: usize): void;
@external("weir:processor/time@0.2.0", "watermark")
declare function hostWatermark(ret: usize): void;
@external("weir:processor/time@0.2.0", "set-timer")
declare function hostSetTimer(keyPtr: usize, keyLen: usize, at: i64, domain: u32, ret: usize): void;
@external("weir:processor/time@0.2.0", "cancel-timer")
declare function hostCancelTimer(keyPtr: usize, keyLen: usize, at: i64, domain: u32): void;

/** Return area of the state and time calls (16 bytes, 8-aligned). */
const STATE_RET: usize = memory.data(16, 8);

let lastStateError: string | null = null;

/** Why the last `Store.increment` (or `openStore`) failed. */
export function stateError(): string | null {
  return lastStateError;
}

/** Takes the host's string at `at` (pointer, length): decodes and frees it. */
function takeString(at: usize): string {
  const ptr = load<usize>(at);
  const s = String.UTF8.decodeUnsafe(ptr, load<usize>(at + 4));
  heap.free(ptr);
  return s;
}

/** A `result<_, string>` in the return area: null, or the error. */
function unitResult(): string | null {
  return load<u8>(STATE_RET) == 0 ? null : takeString(STATE_RET + 4);
}

/** A keyed state store the deployment declares (`"stores": ["counts"]`). Writes commit with
 * the outputs of the record that made them; a record that fails loses them. */
export class Store {
  constructor(public handle: u32) {}

  /** A copy of the value of `key`, or null. */
  get(key: Uint8Array): Uint8Array | null {
    hostGet(this.handle, key.dataStart, key.byteLength, STATE_RET);
    if (load<u8>(STATE_RET) == 0) return null;
    const ptr = load<usize>(STATE_RET + 4);
    const out = copyOut(ptr, load<usize>(STATE_RET + 8));
    heap.free(ptr);
    return out;
  }

  /** The values of `keys` in one host call: copies, or null where a key has none. */
  getMany(keys: Array<Uint8Array>): Array<Uint8Array | null> {
    const n = keys.length;
    const list = heap.alloc(<usize>n * 8 + 8);
    for (let i = 0; i < n; i++) {
      store<usize>(list + <usize>i * 8, keys[i].dataStart);
      store<usize>(list + <usize>i * 8 + 4, keys[i].byteLength);
    }
    hostGetMany(this.handle, list, n, STATE_RET);
    heap.free(list);
    const ptr = load<usize>(STATE_RET);
    const len = load<usize>(STATE_RET + 4);
    const out = new Array<Uint8Array | null>(<i32>len);
    for (let i: usize = 0; i < len; i++) {
      const at = ptr + i * 12;
      if (load<u8>(at) == 0) {
        out[<i32>i] = null;
        continue;
      }
      const v = load<usize>(at + 4);
      out[<i32>i] = copyOut(v, load<usize>(at + 8));
      heap.free(v);
    }
    heap.free(ptr);
    return out;
  }

  /** Up to `limit` entries with `start <= key < end` (`end` null: to the last key), in key
   * order. One call gives at most 16 MiB of keys and values, so fewer than `limit` is not the
   * end: scan on from the last key with a 0 byte appended until the answer is empty. */
  scan(start: Uint8Array, end: Uint8Array | null, limit: u32): Array<Entry> {
    if (end === null) {
      hostScan(this.handle, start.dataStart, start.byteLength, 0, 0, 0, limit, STATE_RET);
    } else {
      const e = changetype<Uint8Array>(end);
      hostScan(this.handle, start.dataStart, start.byteLength, 1, e.dataStart, e.byteLength, limit, STATE_RET);
    }
    const ptr = load<usize>(STATE_RET);
    const len = load<usize>(STATE_RET + 4);
    const out = new Array<Entry>(<i32>len);
    for (let i: usize = 0; i < len; i++) {
      const at = ptr + i * 16;
      const k = load<usize>(at);
      const v = load<usize>(at + 8);
      out[<i32>i] = new Entry(copyOut(k, load<usize>(at + 4)), copyOut(v, load<usize>(at + 12)));
      heap.free(k);
      heap.free(v);
    }
    heap.free(ptr);
    return out;
  }

  /** The value of `key` (text) as text, or null. */
  getString(key: string): string | null {
    const v = this.get(Uint8Array.wrap(String.UTF8.encode(key)));
    return v === null ? null : String.UTF8.decode(v.buffer);
  }

  /** Sets `key` to `value`: null, or why not (a state limit; return it to fail the record). */
  set(key: Uint8Array, value: Uint8Array): string | null {
    hostSet(this.handle, key.dataStart, key.byteLength, value.dataStart, value.byteLength, STATE_RET);
    return unitResult();
  }

  /** `set` with text. */
  setString(key: string, value: string): string | null {
    return this.set(Uint8Array.wrap(String.UTF8.encode(key)), Uint8Array.wrap(String.UTF8.encode(value)));
  }

  /** Removes `key`. */
  delete(key: Uint8Array): string | null {
    hostDelete(this.handle, key.dataStart, key.byteLength, STATE_RET);
    return unitResult();
  }

  /** Adds `delta` to the integer at `key` (absent: 0) and returns the new value; on a refusal
   * `i64.MIN_VALUE`, and `stateError()` says why. */
  increment(key: Uint8Array, delta: i64 = 1): i64 {
    hostIncrement(this.handle, key.dataStart, key.byteLength, delta, STATE_RET);
    if (load<u8>(STATE_RET) == 0) return load<i64>(STATE_RET + 8);
    lastStateError = takeString(STATE_RET + 8);
    return i64.MIN_VALUE;
  }

  /** `increment` with a text key. */
  incrementString(key: string, delta: i64 = 1): i64 {
    return this.increment(Uint8Array.wrap(String.UTF8.encode(key)), delta);
  }
}

/** One entry of a store, from `Store.scan`. */
export class Entry {
  constructor(
    public key: Uint8Array,
    public value: Uint8Array,
  ) {}

  keyString(): string {
    return String.UTF8.decode(this.key.buffer);
  }

  valueString(): string {
    return String.UTF8.decode(this.value.buffer);
  }
}

/** The declared store `name` (open it once, in `init`), or null: `stateError()` says why. */
export function openStore(name: string): Store | null {
  const n = String.UTF8.encode(name);
  hostOpen(changetype<usize>(n), n.byteLength, STATE_RET);
  if (load<u8>(STATE_RET) == 0) return new Store(load<u32>(STATE_RET + 4));
  lastStateError = takeString(STATE_RET + 4);
  return null;
}

/** A table the deployment declares (`"tables": ["customers"]`): a topic read as the latest
 * value of each key, found wherever the key's records went. Read-only. */
export class Table {
  constructor(public handle: u32) {}

  /** A copy of the latest value of `key`, or null. */
  lookup(key: Uint8Array): Uint8Array | null {
    hostTableLookup(this.handle, key.dataStart, key.byteLength, STATE_RET);
    if (load<u8>(STATE_RET) == 0) return null;
    const ptr = load<usize>(STATE_RET + 4);
    const out = copyOut(ptr, load<usize>(STATE_RET + 8));
    heap.free(ptr);
    return out;
  }
}

/** The declared table `name` (open it once, in `init`), or null: `stateError()` says why. */
export function openTable(name: string): Table | null {
  const n = String.UTF8.encode(name);
  hostTableOpen(changetype<usize>(n), n.byteLength, STATE_RET);
  if (load<u8>(STATE_RET) == 0) return new Table(load<u32>(STATE_RET + 4));
  lastStateError = takeString(STATE_RET + 4);
  return null;
}

/** Which clock a timer follows. */
export enum Domain {
  EventTime = 0,
  ProcessingTime = 1,
}

/** Whether the task has a watermark yet (see `watermark`). */
export function hasWatermark(): bool {
  hostWatermark(STATE_RET);
  return load<u8>(STATE_RET) != 0;
}

/** The task's watermark (the largest record timestamp processed, ms); 0 before the first. */
export function watermark(): i64 {
  hostWatermark(STATE_RET);
  return load<u8>(STATE_RET) != 0 ? load<i64>(STATE_RET + 8) : 0;
}

/** Sets a timer for `key` at `at` (ms); it comes back to the processor's `onTimer`. */
export function setTimer(key: Uint8Array, at: i64, domain: Domain = Domain.EventTime): string | null {
  hostSetTimer(key.dataStart, key.byteLength, at, <u32>domain, STATE_RET);
  return unitResult();
}

/** Cancels that timer. */
export function cancelTimer(key: Uint8Array, at: i64, domain: Domain = Domain.EventTime): void {
  hostCancelTimer(key.dataStart, key.byteLength, at, <u32>domain);
}

/** A timer that came due. */
export class Timer {
  key: Uint8Array = new Uint8Array(0);
  /** Milliseconds since the Unix epoch. */
  at: i64 = 0;
  domain: Domain = Domain.EventTime;

  keyString(): string {
    return String.UTF8.decode(this.key.buffer);
  }
}

const timer = new Timer();
let timerHandler: (t: Timer, o: Output) => string | null = noTimer;

function noTimer(t: Timer, o: Output): string | null {
  return null;
}

function timerRecord(r: Record, o: Output): string | null {
  timer.key = r.keyLen >= 0 ? copyOut(r.keyPtr, <usize>r.keyLen) : new Uint8Array(0);
  timer.at = r.timestamp;
  timer.domain = r.valueLen > 0 && load<u8>(r.valuePtr) == 1 ? Domain.ProcessingTime : Domain.EventTime;
  return timerHandler(timer, o);
}

/** Decodes a packed batch of fired timers and calls `onTimer` for each. */
export function processTimers(ptr: usize, len: usize, onTimer: (t: Timer, o: Output) => string | null): usize {
  timerHandler = onTimer;
  return processBatch(ptr, len, timerRecord);
}

/** `processTimers` for a processor without `onTimer`. */
export function processNoTimers(ptr: usize, len: usize): usize {
  timerHandler = noTimer;
  return processBatch(ptr, len, timerRecord);
}

export function weir_post_on_timers_packed(ret: usize): void {
  heap.free(load<usize>(ret + 4));
}

/** `abort` (a failed assertion, an out-of-bounds access): log the reason, then trap. */
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  log(Level.Error, "abort: " + (message !== null ? message : "") + " at " + (file !== null ? file : "?") + ":" + line.toString() + ":" + column.toString());
  unreachable();
}
