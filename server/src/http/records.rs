//! Encoding stored records as JSON for fetch answers and SSE events, straight from batch bytes.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::log::batch::{self, RecordView};

/// How keys and values are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A string when the bytes are UTF-8, else `*_b64`.
    Auto,
    /// Always `key_b64` / `value_b64`.
    Base64,
}

/// Appends records of `batches` (whole batches from the log) with offsets from `from` on, as
/// comma-separated JSON objects, stopping after `max_records`, or once `out` has grown by
/// `max_out_bytes` (at least one record is written: a big batch, or escaping that makes JSON
/// six times its bytes, never makes an answer larger than one record past the limit). Returns
/// (records, payload bytes, next offset).
pub fn write_records(
    out: &mut Vec<u8>,
    partition: u32,
    batches: &[u8],
    from: u64,
    max_records: usize,
    max_out_bytes: usize,
    encoding: Encoding,
) -> (usize, u64, u64) {
    let (mut count, mut bytes, mut next) = (0usize, 0u64, from);
    let start = out.len();
    let mut pos = 0;
    while pos < batches.len() && count < max_records {
        let Ok(iter) = batch::records(&batches[pos..]) else {
            break;
        };
        let Ok(header) = batch::BatchHeader::parse(&batches[pos..]) else {
            break;
        };
        pos += header.total_bytes;
        if header.next_offset() <= from {
            continue;
        }
        for r in iter {
            let Ok(r) = r else {
                tracing::error!(partition, offset = next, "undecodable record in a verified batch");
                break;
            };
            if r.offset < from {
                continue;
            }
            if count > 0 || out.last().is_some_and(|&b| b == b'}') {
                out.push(b',');
            }
            bytes += write_record(out, partition, &r, encoding) as u64;
            next = r.offset + 1;
            count += 1;
            if count >= max_records || out.len() - start >= max_out_bytes {
                return (count, bytes, next);
            }
        }
    }
    (count, bytes, next)
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
    write_bytes_field(out, "value", r.value, encoding);
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
    r.key.map_or(0, <[u8]>::len) + r.value.len() + r.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
}
