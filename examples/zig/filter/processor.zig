//! Keeps records whose value contains a configured substring.
//!
//! Config: `contains` (required), the text to look for; `ignore_case` ("true" or "false",
//! default false) compares ASCII letters without case. A matching record is forwarded
//! unchanged (key, value and headers); others are dropped. A value that is not valid UTF-8
//! text fails: it goes to the dead-letter topic with the reason.
const std = @import("std");
const weir = @import("weir");

var needle: []const u8 = "";
var ignore_case = false;

pub fn init(config: weir.Config) !void {
    needle = config.get("contains") orelse "";
    if (needle.len == 0) return weir.fail("config parameter 'contains' is required (deploy with --config contains=TEXT)", .{});
    ignore_case = std.mem.eql(u8, config.get("ignore_case") orelse "false", "true");
    weir.log(.info, "keeping values that contain \"{s}\"{s}", .{ needle, if (ignore_case) " (any case)" else "" });
}

pub fn process(record: weir.Record, out: weir.Output) !void {
    const value = record.value();
    if (!std.unicode.utf8ValidateSlice(value)) return weir.fail("value is not UTF-8 text", .{});
    const found = if (ignore_case)
        std.ascii.findIgnoreCase(value, needle) != null
    else
        std.mem.find(u8, value, needle) != null;
    if (found) out.forward(record);
}

comptime {
    weir.exportProcessor(@This());
}
