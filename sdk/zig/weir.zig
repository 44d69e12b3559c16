//! weir: write Weir stream processors in Zig.
//!
//! A processor is a file with a `process` function (and optionally `init`) that ends with
//! `comptime { weir.exportProcessor(@This()); }`:
//!
//!     const weir = @import("weir");
//!
//!     pub fn process(record: weir.Record, out: weir.Output) !void {
//!         out.forward(record); // pass the record through unchanged
//!     }
//!
//!     comptime {
//!         weir.exportProcessor(@This());
//!     }
//!
//! It runs over the C SDK (weir.h, weir.c) and the C bindings that `weir processor build`
//! generates from wit/processor.wit: records are read in place from the packed batch, nothing
//! is allocated per record. An error returned from `process` fails that record alone: what it
//! emitted is dropped and the broker applies the processor's error policy to it, with the
//! error's name as the message (or the text given to `weir.fail`).

const std = @import("std");

/// The C SDK's declarations (weir.h), written out: Zig 0.16+ has no @cImport outside its build
/// system, and `zig translate-c` compiles for most of a minute on first use.
pub const c = struct {
    pub const weir_bytes = extern struct { ptr: ?[*]const u8, len: usize };
    pub const weir_header = extern struct { name: weir_bytes, value: weir_bytes };
    pub const weir_record = extern struct {
        topic: weir_bytes,
        partition: u32,
        offset: u64,
        timestamp: i64,
        has_key: bool,
        key: weir_bytes,
        value: weir_bytes,
        header_count: u32,
        headers_at_: ?[*]const u8,
        tail_: ?[*]const u8,
        tail_len_: usize,
    };
    pub const weir_header_iter = extern struct { at_: ?[*]const u8, left_: u32 };
    pub const weir_message = extern struct {
        key: ?*const weir_bytes,
        value: weir_bytes,
        headers: ?[*]const weir_header,
        header_count: usize,
        output: u32,
    };
    pub const weir_config = opaque {};
    pub const weir_output = opaque {};
    pub extern fn weir_headers(record: *const weir_record) weir_header_iter;
    pub extern fn weir_header_next(it: *weir_header_iter, header: *weir_header) bool;
    pub extern fn weir_config_get(config: ?*const weir_config, name: [*:0]const u8) ?[*:0]const u8;
    pub extern fn weir_forward(out: *weir_output, record: *const weir_record) void;
    pub extern fn weir_forward_to(out: *weir_output, record: *const weir_record, output: u32) void;
    pub extern fn weir_emit(out: *weir_output, value: weir_bytes) void;
    pub extern fn weir_emit_like(out: *weir_output, like: *const weir_record, value: weir_bytes, output: u32) void;
    pub extern fn weir_send(out: *weir_output, message: *const weir_message) void;
    pub extern fn weir_log_bytes(level: c_uint, line: weir_bytes) void;
    pub const weir_store = extern struct { handle_: u32 };
    pub const weir_owned = extern struct { ptr: ?[*]u8, len: usize };
    pub const weir_timer = extern struct { key: weir_bytes, at: i64, domain: c_uint };
    pub extern fn weir_owned_free(bytes: *weir_owned) void;
    pub extern fn weir_store_open(name: [*:0]const u8, store: *weir_store) ?[*:0]const u8;
    pub extern fn weir_store_get(store: weir_store, key: weir_bytes, value: *weir_owned) bool;
    pub extern fn weir_store_get_many(store: weir_store, keys: [*]const weir_bytes, n: usize, values: [*]weir_owned, found: [*]bool) void;
    pub extern fn weir_store_scan(
        store: weir_store,
        start: weir_bytes,
        end: ?*const weir_bytes,
        limit: u32,
        each: *const fn (key: weir_bytes, value: weir_bytes, ctx: ?*anyopaque) callconv(.c) void,
        ctx: ?*anyopaque,
    ) usize;
    pub extern fn weir_store_set(store: weir_store, key: weir_bytes, value: weir_bytes) ?[*:0]const u8;
    pub extern fn weir_store_delete(store: weir_store, key: weir_bytes) ?[*:0]const u8;
    pub extern fn weir_store_increment(store: weir_store, key: weir_bytes, delta: i64, result: *i64) ?[*:0]const u8;
    pub extern fn weir_watermark(ms: *i64) bool;
    pub extern fn weir_set_timer(key: weir_bytes, at: i64, domain: c_uint) ?[*:0]const u8;
    pub extern fn weir_cancel_timer(key: weir_bytes, at: i64, domain: c_uint) void;
};

/// `Output.send` value meaning "the processor's first output topic".
pub const default_output: u32 = std.math.maxInt(u32);

fn slice(b: c.weir_bytes) []const u8 {
    if (b.len == 0) return &[_]u8{};
    return b.ptr.?[0..b.len];
}

fn bytes(s: []const u8) c.weir_bytes {
    return .{ .ptr = s.ptr, .len = s.len };
}

/// One input record, read in place from the batch: valid while `process` runs.
pub const Record = struct {
    raw: *const c.weir_record,

    pub fn topic(self: Record) []const u8 {
        return slice(self.raw.topic);
    }
    pub fn partition(self: Record) u32 {
        return self.raw.partition;
    }
    pub fn offset(self: Record) u64 {
        return self.raw.offset;
    }
    /// Milliseconds since the Unix epoch.
    pub fn timestamp(self: Record) i64 {
        return self.raw.timestamp;
    }
    pub fn key(self: Record) ?[]const u8 {
        return if (self.raw.has_key) slice(self.raw.key) else null;
    }
    pub fn value(self: Record) []const u8 {
        return slice(self.raw.value);
    }
    /// The value of the first header named `name`.
    pub fn header(self: Record, name: []const u8) ?[]const u8 {
        var it = c.weir_headers(self.raw);
        var h: c.weir_header = undefined;
        while (c.weir_header_next(&it, &h)) {
            if (std.mem.eql(u8, slice(h.name), name)) return slice(h.value);
        }
        return null;
    }
};

/// A header of an output record.
pub const Header = struct { name: []const u8, value: []const u8 };

/// An output record.
pub const Message = struct {
    key: ?[]const u8 = null,
    value: []const u8,
    headers: []const Header = &.{},
    /// Index into the processor's outputs.
    output: u32 = default_output,
};

/// What one batch emits.
pub const Output = struct {
    raw: *c.weir_output,

    /// Emits `record` unchanged (key, value, headers) to the first output.
    pub fn forward(self: Output, record: Record) void {
        c.weir_forward(self.raw, record.raw);
    }
    /// Emits `record` unchanged to output `output`.
    pub fn forwardTo(self: Output, record: Record, output: u32) void {
        c.weir_forward_to(self.raw, record.raw, output);
    }
    /// Emits `value` with the key and headers of `like`, to the first output (what a map does).
    pub fn emitLike(self: Output, like: Record, value: []const u8) void {
        c.weir_emit_like(self.raw, like.raw, bytes(value), default_output);
    }
    /// Emits a record with only a value, to the first output.
    pub fn emit(self: Output, value: []const u8) void {
        c.weir_emit(self.raw, bytes(value));
    }
    /// Emits any record; the bytes are copied.
    pub fn send(self: Output, m: Message) void {
        var headers: [32]c.weir_header = undefined;
        const n = @min(m.headers.len, headers.len);
        for (m.headers[0..n], 0..) |h, i| headers[i] = .{ .name = bytes(h.name), .value = bytes(h.value) };
        var k: c.weir_bytes = undefined;
        if (m.key) |key| k = bytes(key);
        const msg = c.weir_message{
            .key = if (m.key != null) &k else null,
            .value = bytes(m.value),
            .headers = &headers,
            .header_count = n,
            .output = m.output,
        };
        c.weir_send(self.raw, &msg);
    }
};

/// The processor's parameters, as given at deploy time (`--config name=value`).
pub const Config = struct {
    raw: ?*const c.weir_config,

    pub fn get(self: Config, name: [:0]const u8) ?[]const u8 {
        const v = c.weir_config_get(self.raw, name.ptr) orelse return null;
        return std.mem.span(v);
    }
};

pub const Level = enum(c_uint) { trace, debug, info, warn, @"error" };

/// Writes a formatted line to the processor's log (`weir processor logs NAME`).
pub fn log(level: Level, comptime format: []const u8, args: anytype) void {
    var buf: [4096]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, format, args) catch buf[0..];
    c.weir_log_bytes(@intFromEnum(level), bytes(line));
}

var message: [4096]u8 = undefined;
var has_message = false;

/// Fails the current record with a formatted message: `return weir.fail("bad amount {d}", .{n});`
pub fn fail(comptime format: []const u8, args: anytype) error{Failed} {
    const text = std.fmt.bufPrint(message[0 .. message.len - 1], format, args) catch message[0 .. message.len - 1];
    message[text.len] = 0;
    has_message = true;
    return error.Failed;
}

fn failure(err: anyerror) [*:0]const u8 {
    if (has_message and err == error.Failed) {
        has_message = false;
        return @ptrCast(&message);
    }
    has_message = false;
    return @errorName(err);
}

/// Fails the current record with a message from the host (a state limit, say).
fn refused(text: [*:0]const u8) error{Failed} {
    return fail("{s}", .{std.mem.span(text)});
}

/// Bytes the host gave: call `free` when done.
pub const Owned = struct {
    raw: c.weir_owned,

    pub fn slice(self: Owned) []const u8 {
        return if (self.raw.ptr) |p| p[0..self.raw.len] else &.{};
    }

    pub fn free(self: *Owned) void {
        c.weir_owned_free(&self.raw);
    }
};

/// A table the deployment declares (`"tables": ["customers"]`): a topic read as the latest
/// value of each key, found wherever the key's records went. Read-only.
pub const Table = struct {
    raw: c.weir_table,

    /// The declared table `name` (open it once, in `init`).
    pub fn open(name: [:0]const u8) error{Failed}!Table {
        var t: c.weir_table = .{ .handle_ = 0 };
        if (c.weir_table_open(name.ptr, &t)) |e| return refused(e);
        return .{ .raw = t };
    }

    /// The latest value of `key`, if the table has one (`free` it).
    pub fn lookup(self: Table, key: []const u8) ?Owned {
        var v: c.weir_owned = .{ .ptr = null, .len = 0 };
        if (!c.weir_table_lookup(self.raw, bytes(key), &v)) return null;
        return .{ .raw = v };
    }
};

/// A keyed state store the deployment declares (`"stores": ["counts"]`). Writes commit with
/// the outputs of the record that made them; a record that fails loses them.
pub const Store = struct {
    raw: c.weir_store,

    /// The declared store `name` (open it once, in `init`).
    pub fn open(name: [:0]const u8) error{Failed}!Store {
        var s: c.weir_store = .{ .handle_ = 0 };
        if (c.weir_store_open(name.ptr, &s)) |e| return refused(e);
        return .{ .raw = s };
    }

    /// The value of `key`, if any (`free` it).
    pub fn get(self: Store, key: []const u8) ?Owned {
        var v: c.weir_owned = .{ .ptr = null, .len = 0 };
        if (!c.weir_store_get(self.raw, bytes(key), &v)) return null;
        return .{ .raw = v };
    }

    /// The values of `keys` in one host call, into `values` (as long as `keys`): null where a
    /// key has none. `free` each one that is not null.
    pub fn getMany(self: Store, keys: []const []const u8, values: []?Owned) void {
        std.debug.assert(values.len == keys.len);
        var raw_keys: [64]c.weir_bytes = undefined;
        var raw_values: [64]c.weir_owned = undefined;
        var found: [64]bool = undefined;
        var done: usize = 0;
        // A chunk of 64 at a time, on the stack.
        while (done < keys.len) {
            const n = @min(keys.len - done, raw_keys.len);
            for (keys[done .. done + n], 0..) |k, i| raw_keys[i] = bytes(k);
            c.weir_store_get_many(self.raw, &raw_keys, n, &raw_values, &found);
            for (0..n) |i| values[done + i] = if (found[i]) Owned{ .raw = raw_values[i] } else null;
            done += n;
        }
    }

    /// Calls `each(ctx, key, value)` for up to `limit` entries with `start <= key < end` (null:
    /// to the last key), in key order, and returns how many. The slices are valid during the
    /// call only. One call gives at most 16 MiB of keys and values, so fewer than `limit` is
    /// not the end: scan on from the last key with a 0 byte appended until it returns 0.
    pub fn scan(
        self: Store,
        start: []const u8,
        end: ?[]const u8,
        limit: u32,
        ctx: anytype,
        comptime each: fn (@TypeOf(ctx), []const u8, []const u8) void,
    ) usize {
        const Ctx = @TypeOf(ctx);
        const Trampoline = struct {
            fn call(k: c.weir_bytes, v: c.weir_bytes, raw: ?*anyopaque) callconv(.c) void {
                const p: *const Ctx = @ptrCast(@alignCast(raw.?));
                each(p.*, slice(k), slice(v));
            }
        };
        var e: c.weir_bytes = undefined;
        var end_ptr: ?*const c.weir_bytes = null;
        if (end) |x| {
            e = bytes(x);
            end_ptr = &e;
        }
        var context = ctx;
        return c.weir_store_scan(self.raw, bytes(start), end_ptr, limit, &Trampoline.call, @ptrCast(&context));
    }

    pub fn set(self: Store, key: []const u8, value: []const u8) error{Failed}!void {
        if (c.weir_store_set(self.raw, bytes(key), bytes(value))) |e| return refused(e);
    }

    pub fn delete(self: Store, key: []const u8) error{Failed}!void {
        if (c.weir_store_delete(self.raw, bytes(key))) |e| return refused(e);
    }

    /// Adds `delta` to the integer at `key` (absent: 0); returns the new value.
    pub fn increment(self: Store, key: []const u8, delta: i64) error{Failed}!i64 {
        var n: i64 = 0;
        if (c.weir_store_increment(self.raw, bytes(key), delta, &n)) |e| return refused(e);
        return n;
    }
};

/// Which clock a timer follows.
pub const Domain = enum(c_uint) { event_time, processing_time };

/// A timer that came due.
pub const Timer = struct {
    raw: *const c.weir_timer,

    pub fn key(self: Timer) []const u8 {
        return if (self.raw.key.ptr) |p| p[0..self.raw.key.len] else &.{};
    }
    pub fn at(self: Timer) i64 {
        return self.raw.at;
    }
    pub fn domain(self: Timer) Domain {
        return @enumFromInt(self.raw.domain);
    }
};

/// The task's watermark (the largest record timestamp processed, ms), or null.
pub fn watermark() ?i64 {
    var ms: i64 = 0;
    return if (c.weir_watermark(&ms)) ms else null;
}

/// Sets a timer for `key` at `at` (ms); it comes back to the processor's `onTimer`.
pub fn setTimer(key: []const u8, at: i64, domain: Domain) error{Failed}!void {
    if (c.weir_set_timer(bytes(key), at, @intFromEnum(domain))) |e| return refused(e);
}

pub fn cancelTimer(key: []const u8, at: i64, domain: Domain) void {
    c.weir_cancel_timer(bytes(key), at, @intFromEnum(domain));
}

/// Exports `P.process` (and `P.init` and `P.onTimer` when `P` has them) to the C SDK. Call it
/// from a `comptime` block of the processor's file.
pub fn exportProcessor(comptime P: type) void {
    const Exports = struct {
        fn process(record: *const c.weir_record, out: *c.weir_output) callconv(.c) ?[*:0]const u8 {
            P.process(.{ .raw = record }, .{ .raw = out }) catch |err| return failure(err);
            return null;
        }
        fn init(config: ?*const c.weir_config) callconv(.c) ?[*:0]const u8 {
            P.init(.{ .raw = config }) catch |err| return failure(err);
            return null;
        }
        fn onTimer(timer: *const c.weir_timer, out: *c.weir_output) callconv(.c) ?[*:0]const u8 {
            P.onTimer(.{ .raw = timer }, .{ .raw = out }) catch |err| return failure(err);
            return null;
        }
    };
    @export(&Exports.process, .{ .name = "weir_process" });
    if (@hasDecl(P, "init")) @export(&Exports.init, .{ .name = "weir_init" });
    if (@hasDecl(P, "onTimer")) @export(&Exports.onTimer, .{ .name = "weir_on_timer" });
}
