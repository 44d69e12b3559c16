//! The state-api script (see ../README.md) in Zig.
const std = @import("std");
const weir = @import("weir");

var s: weir.Store = undefined;

pub fn init(config: weir.Config) !void {
    _ = config;
    s = try weir.Store.open("s");
}

/// An answer built in a fixed buffer.
const Answer = struct {
    buf: [16 * 1024]u8 = undefined,
    len: usize = 0,

    fn put(self: *Answer, bytes: []const u8) void {
        const n = @min(bytes.len, self.buf.len - self.len);
        @memcpy(self.buf[self.len .. self.len + n], bytes[0..n]);
        self.len += n;
    }

    fn slice(self: *const Answer) []const u8 {
        return self.buf[0..self.len];
    }
};

var answer: Answer = .{};

fn scanEntry(a: *Answer, key: []const u8, value: []const u8) void {
    if (a.len > 0) a.put(",");
    a.put(key);
    a.put("=");
    a.put(value);
}

pub fn process(record: weir.Record, out: weir.Output) !void {
    var words = std.mem.tokenizeScalar(u8, record.value(), ' ');
    var args: [16][]const u8 = undefined;
    var argc: usize = 0;
    while (words.next()) |w| {
        if (argc == args.len) break;
        args[argc] = w;
        argc += 1;
    }
    if (argc == 0) return weir.fail("empty command", .{});
    const op = args[0];
    answer = .{};
    if (std.mem.eql(u8, op, "set") and argc == 3) {
        try s.set(args[1], args[2]);
        answer.put("ok");
    } else if (std.mem.eql(u8, op, "get") and argc == 2) {
        if (s.get(args[1])) |v| {
            var owned = v;
            answer.put(owned.slice());
            owned.free();
        } else answer.put("none");
    } else if (std.mem.eql(u8, op, "many")) {
        var values: [16]?weir.Owned = undefined;
        s.getMany(args[1..argc], values[0 .. argc - 1]);
        for (values[0 .. argc - 1], 0..) |v, i| {
            if (i > 0) answer.put(",");
            if (v) |got| {
                var owned = got;
                answer.put(owned.slice());
                owned.free();
            } else answer.put("none");
        }
    } else if (std.mem.eql(u8, op, "del") and argc == 2) {
        try s.delete(args[1]);
        answer.put("ok");
    } else if (std.mem.eql(u8, op, "inc") and argc == 3) {
        const delta = std.fmt.parseInt(i64, args[2], 10) catch return weir.fail("bad number {s}", .{args[2]});
        const now = try s.increment(args[1], delta);
        var num: [32]u8 = undefined;
        answer.put(std.fmt.bufPrint(&num, "{d}", .{now}) catch unreachable);
    } else if (std.mem.eql(u8, op, "scan") and argc == 4) {
        const end: ?[]const u8 = if (std.mem.eql(u8, args[2], "-")) null else args[2];
        const limit = std.fmt.parseInt(u32, args[3], 10) catch return weir.fail("bad limit {s}", .{args[3]});
        _ = s.scan(args[1], end, limit, &answer, scanEntry);
    } else if (std.mem.eql(u8, op, "timer") and argc == 3) {
        const at = std.fmt.parseInt(i64, args[2], 10) catch return weir.fail("bad time {s}", .{args[2]});
        try weir.setTimer(args[1], at, .event_time);
        answer.put("ok");
    } else if (std.mem.eql(u8, op, "fail") and argc == 3) {
        try s.set(args[1], args[2]);
        return weir.fail("failed on purpose", .{});
    } else if (std.mem.eql(u8, op, "big") and argc == 3) {
        const size = std.fmt.parseInt(usize, args[2], 10) catch return weir.fail("bad size {s}", .{args[2]});
        const big = try std.heap.wasm_allocator.alloc(u8, size);
        defer std.heap.wasm_allocator.free(big);
        @memset(big, 'x');
        try s.set(args[1], big);
        answer.put("ok");
    } else if (std.mem.eql(u8, op, "wm") and argc == 1) {
        answer.put(if (weir.watermark() == null) "none" else "some");
    } else {
        return weir.fail("unknown command {s}", .{op});
    }
    out.emit(answer.slice());
}

pub fn onTimer(timer: weir.Timer, out: weir.Output) !void {
    answer = .{};
    var at: [32]u8 = undefined;
    answer.put("fired ");
    answer.put(timer.key());
    answer.put(std.fmt.bufPrint(&at, " {d}", .{timer.at()}) catch unreachable);
    out.emit(answer.slice());
}

comptime {
    weir.exportProcessor(@This());
}
