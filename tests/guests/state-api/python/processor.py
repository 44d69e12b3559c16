"""The state-api script (see ../README.md) in Python."""

import weir

s = weir.Store("s")


def text(v):
    return "none" if v is None else v.decode()


def process(record, out):
    op, *args = record.text().split(" ")
    if op == "set":
        s.set(args[0], args[1])
        out.emit("ok")
    elif op == "get":
        out.emit(text(s.get(args[0])))
    elif op == "many":
        out.emit(",".join(text(v) for v in s.get_many(args)))
    elif op == "del":
        s.delete(args[0])
        out.emit("ok")
    elif op == "inc":
        out.emit(str(s.increment(args[0], int(args[1]))))
    elif op == "scan":
        end = None if args[1] == "-" else args[1]
        pairs = s.scan(args[0], end, int(args[2]))
        out.emit(",".join("%s=%s" % (k.decode(), v.decode()) for k, v in pairs))
    elif op == "timer":
        weir.set_timer(args[0], int(args[1]))
        out.emit("ok")
    elif op == "fail":
        s.set(args[0], args[1])
        raise ValueError("failed on purpose")
    elif op == "big":
        s.set(args[0], "x" * int(args[1]))
        out.emit("ok")
    elif op == "wm":
        out.emit("none" if weir.watermark() is None else "some")
    else:
        raise ValueError("unknown command " + op)


def on_timer(timer, out):
    out.emit("fired %s %d" % (timer.key.decode(), timer.at))
