//! Encoding stored records as JSON for fetch answers and SSE events, straight from batch bytes.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::record::RecordView;
use crate::topic::Chunk;

/// How keys and values are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A string when the bytes are UTF-8, else `*_b64`.
    Auto,
    /// Always `key_b64` / `value_b64`.
    Base64,
}

/// Appends the records of `chunk` a reader may see (see [`crate::topic::reader`]) as
/// comma-separated JSON objects, stopping after `max_records`, or once `out` has grown by
/// `max_out_bytes` (at least one record is written: a big batch, or escaping that makes JSON
/// six times its bytes, never makes an answer larger than one record past the limit). Returns
/// (records, payload bytes, next offset).
pub fn write_records(
    out: &mut Vec<u8>,
    partition: u32,
    chunk: &Chunk,
    max_records: usize,
    max_out_bytes: usize,
    encoding: Encoding,
) -> (usize, u64, u64) {
    let (mut count, mut bytes) = (0usize, 0u64);
    let start = out.len();
    let mut records = chunk.visible();
    if max_records == 0 {
        return (0, 0, chunk.from);
    }
    for r in records.by_ref() {
        if count > 0 || out.last().is_some_and(|&b| b == b'}') {
            out.push(b',');
        }
        bytes += write_record(out, partition, &r, encoding) as u64;
        count += 1;
        if count >= max_records || out.len() - start >= max_out_bytes {
            break;
        }
    }
    (count, bytes, records.next_offset())
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_bytes_field(out: &mut Vec<u8>, name: &str, bytes: &[u8], encoding: Encoding) {
    match (encoding, std::str::from_utf8(bytes)) {
        (Encoding::Auto, Ok(s)) => {
            let _ = write!(out, "\"{name}\":");
            write_str(out, s);
        }
        _ => {
            let _ = write!(out, "\"{name}_b64\":\"");
            out.extend_from_slice(B64.encode(bytes).as_bytes());
            out.push(b'"');
        }
    }
}

/// One record object; returns its payload bytes.
fn write_record(out: &mut Vec<u8>, partition: u32, r: &RecordView<'_>, encoding: Encoding) -> usize {
    let _ = write!(
        out,
        "{{\"partition\":{partition},\"offset\":{},\"timestamp\":{},",
        r.offset, r.timestamp
    );
    match r.key {
        Some(k) => write_bytes_field(out, "key", k, encoding),
        None => out.extend_from_slice(b"\"key\":null"),
    }
    out.push(b',');
    match r.value {
        Some(v) => write_bytes_field(out, "value", v, encoding),
        None => out.extend_from_slice(b"\"value\":null"),
    }
    out.extend_from_slice(b",\"headers\":{");
    let mut binary = Vec::new();
    let mut first = true;
    for (name, value) in &r.headers {
        match std::str::from_utf8(value) {
            Ok(v) => {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, name);
                out.push(b':');
                write_str(out, v);
            }
            Err(_) => binary.push((name, value)),
        }
    }
    out.push(b'}');
    if !binary.is_empty() {
        out.extend_from_slice(b",\"headers_b64\":{");
        for (i, (name, value)) in binary.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, name);
            let _ = write!(out, ":\"{}\"", B64.encode(value));
        }
        out.push(b'}');
    }
    out.push(b'}');
    r.payload_bytes()
}
