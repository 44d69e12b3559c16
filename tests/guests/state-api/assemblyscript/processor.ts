// The state-api script (see ../README.md) in AssemblyScript.
import { Config, Output, Record, Store, Timer, hasWatermark, openStore, setTimer, stateError } from "weir";

let s: Store | null = null;

export function init(config: Config): string | null {
  s = openStore("s");
  return s === null ? stateError() : null;
}

function bytes(t: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(t));
}

function text(v: Uint8Array | null): string {
  return v === null ? "none" : String.UTF8.decode(v.buffer);
}

export function process(record: Record, out: Output): string | null {
  const args = record.valueString().split(" ");
  const op = args[0];
  const store = s!;
  let answer = "";
  if (op == "set" && args.length == 3) {
    const e = store.setString(args[1], args[2]);
    if (e !== null) return e;
    answer = "ok";
  } else if (op == "get" && args.length == 2) {
    answer = text(store.get(bytes(args[1])));
  } else if (op == "many") {
    const keys = new Array<Uint8Array>();
    for (let i = 1; i < args.length; i++) keys.push(bytes(args[i]));
    const values = store.getMany(keys);
    const parts = new Array<string>();
    for (let i = 0; i < values.length; i++) parts.push(text(values[i]));
    answer = parts.join(",");
  } else if (op == "del" && args.length == 2) {
    const e = store.delete(bytes(args[1]));
    if (e !== null) return e;
    answer = "ok";
  } else if (op == "inc" && args.length == 3) {
    const now = store.incrementString(args[1], I64.parseInt(args[2]));
    if (now == i64.MIN_VALUE) return stateError();
    answer = now.toString();
  } else if (op == "scan" && args.length == 4) {
    const end: Uint8Array | null = args[2] == "-" ? null : bytes(args[2]);
    const entries = store.scan(bytes(args[1]), end, <u32>U32.parseInt(args[3]));
    const parts = new Array<string>();
    for (let i = 0; i < entries.length; i++) parts.push(entries[i].keyString() + "=" + entries[i].valueString());
    answer = parts.join(",");
  } else if (op == "timer" && args.length == 3) {
    const e = setTimer(bytes(args[1]), I64.parseInt(args[2]));
    if (e !== null) return e;
    answer = "ok";
  } else if (op == "fail" && args.length == 3) {
    const e = store.setString(args[1], args[2]);
    if (e !== null) return e;
    return "failed on purpose";
  } else if (op == "big" && args.length == 3) {
    const e = store.set(bytes(args[1]), bytes("x".repeat(<i32>I32.parseInt(args[2]))));
    if (e !== null) return e;
    answer = "ok";
  } else if (op == "wm" && args.length == 1) {
    answer = hasWatermark() ? "some" : "none";
  } else {
    return "unknown command " + op;
  }
  out.emitString(answer);
  return null;
}

export function onTimer(timer: Timer, out: Output): string | null {
  out.emitString("fired " + timer.keyString() + " " + timer.at.toString());
  return null;
}
