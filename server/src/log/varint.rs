//! Zig-zag variable-length integers, as Kafka's record format uses them.
//!
//! A value is zig-zag mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) and written 7 bits at a time,
//! least significant group first, with the high bit set on every byte but the last.

/// Longest encoding of a 64-bit varint: ceil(64 / 7) bytes.
pub const VARLONG_BYTES_MAX: usize = 10;

/// Appends `value` zig-zag encoded.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a 32-bit value zig-zag encoded (same wire form as a varlong of the same value).
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Bytes `put_varlong(value)` writes.
pub fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a zig-zag varlong at `buf[*pos..]`, advancing `pos`. `None` if the bytes end early or
/// the encoding runs past ten bytes.
pub fn get_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..VARLONG_BYTES_MAX {
        let byte = *buf.get(*pos + i)?;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Reads a zig-zag varint that must fit 32 bits.
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let start = *pos;
    let v = get_varlong(buf, pos)?;
    match i32::try_from(v) {
        Ok(v) => Some(v),
        Err(_) => {
            *pos = start;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_round_trips_edge_values_and_reports_its_length() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "length of {v}");
            let mut pos = 0;
            assert_eq!(get_varlong(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn zigzag_matches_kafka_examples() {
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 150);
        assert_eq!(out, [0x01, 0x02, 0xac, 0x02]);
    }

    #[test]
    fn truncated_or_overlong_varints_are_rejected() {
        let mut pos = 0;
        assert_eq!(get_varlong(&[0x80], &mut pos), None);
        assert_eq!(get_varlong(&[0xff; 11], &mut pos), None);
        let mut out = Vec::new();
        put_varlong(&mut out, i64::from(i32::MAX) + 1);
        assert_eq!(get_varint(&out, &mut pos), None);
        assert_eq!(pos, 0);
    }
}
