// The state-api script (see ../README.md) in JavaScript.

const s = weir.store("s");
const text = (v) => (v === null || v === undefined ? "none" : new TextDecoder().decode(v));

export function process(record, out) {
  const [op, ...args] = record.text().split(" ");
  switch (op) {
    case "set":
      s.set(args[0], args[1]);
      return out.emit("ok");
    case "get":
      return out.emit(text(s.get(args[0])));
    case "many":
      return out.emit(s.getMany(args).map(text).join(","));
    case "del":
      s.delete(args[0]);
      return out.emit("ok");
    case "inc":
      return out.emit(String(s.increment(args[0], Number(args[1]))));
    case "scan": {
      const pairs = s.scan(args[0], args[1] === "-" ? null : args[1], Number(args[2]));
      return out.emit(pairs.map(([k, v]) => `${text(k)}=${text(v)}`).join(","));
    }
    case "timer":
      weir.setTimer(args[0], Number(args[1]));
      return out.emit("ok");
    case "fail":
      s.set(args[0], args[1]);
      throw new Error("failed on purpose");
    case "big":
      s.set(args[0], "x".repeat(Number(args[1])));
      return out.emit("ok");
    case "wm":
      return out.emit(weir.watermark() === null ? "none" : "some");
    default:
      throw new Error(`unknown command ${op}`);
  }
}

export function onTimer(timer, out) {
  out.emit(`fired ${timer.keyText()} ${timer.at}`);
}
