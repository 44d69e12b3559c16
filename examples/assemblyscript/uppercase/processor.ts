// Uppercases every value (all of Unicode: "straße" becomes "STRASSE"), keeping key and headers.
//
// A value that is not valid UTF-8 text fails: it goes to the dead-letter topic with the
// reason, instead of being uppercased into replacement characters.
import { Output, Record } from "weir";

// Index of the first byte that breaks UTF-8 in [ptr, ptr + len), or -1 when it is all valid.
function firstInvalidUtf8(ptr: usize, len: usize): i64 {
  let i: usize = 0;
  while (i < len) {
    const c = load<u8>(ptr + i);
    let n: usize = 0;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c < 0xe0) n = 2;
    else if ((c & 0xf0) == 0xe0) n = 3;
    else if (c >= 0xf0 && c <= 0xf4) n = 4;
    if (n == 0 || i + n > len) return <i64>i;
    for (let k: usize = 1; k < n; k++) {
      if ((load<u8>(ptr + i + k) & 0xc0) != 0x80) return <i64>i;
    }
    i += n;
  }
  return -1;
}

export function process(record: Record, out: Output): string | null {
  const bad = firstInvalidUtf8(record.valuePtr, record.valueLen);
  if (bad >= 0) return "value is not UTF-8 text (bad byte at " + bad.toString() + ")";
  const upper = record.valueString().toUpperCase();
  out.emitString(upper, record.keyString(), record.headers());
  return null;
}
