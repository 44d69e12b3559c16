//! Packed batches: the byte layout that carries a batch into the guest and its output back,
//! decoded in place without per-record allocation. The broker and the SDK share this module.
//!
//! All integers are little-endian and unaligned. Each field follows the previous one.
//!
//! ```text
//! input batch (host -> guest)
//!   VERSION    u32   = 1
//!   TOPIC_LEN  u32, then TOPIC_LEN bytes of UTF-8
//!   PARTITION  u32
//!   COUNT      u32
//!   COUNT records:
//!     OFFSET     u64
//!     TIMESTAMP  i64   ms since the Unix epoch
//!     KEY_LEN    i32   -1: no key
//!     VALUE_LEN  u32
//!     HEADERS    u32   number of headers
//!     key bytes, value bytes
//!     HEADERS times: NAME_LEN u32, name (UTF-8), LEN u32, value bytes
//!
//! output (guest -> host)
//!   COUNT      u32
//!   COUNT records, in the order emitted:
//!     INPUT      u32   index in the input batch of the record this one was emitted for
//!     OUTPUT     u32   index into the processor's outputs; u32::MAX: the first output
//!     KEY_LEN    i32   -1: no key
//!     VALUE_LEN  u32
//!     HEADERS    u32
//!     key bytes, value bytes, headers as above
//!   FAILED     u32
//!   FAILED times, in input order:
//!     INPUT      u32   index of an input record the processor failed on
//!     MSG_LEN    u32, then the message (UTF-8)
//! ```
//!
//! A failed record contributes no output records: the SDK drops what was emitted for it. So one
//! call handles a whole batch even when some records are bad, and the broker applies the error
//! policy to exactly those records.

use core::fmt;

/// Version word at the start of every input batch.
///
/// ```
/// assert_eq!(weir_sdk::packed::VERSION, 1);
/// ```
pub const VERSION: u32 = 1;
/// `OUTPUT` value meaning "the processor's first output".
///
/// ```
/// assert_eq!(weir_sdk::packed::DEFAULT_OUTPUT, u32::MAX);
/// ```
pub const DEFAULT_OUTPUT: u32 = u32::MAX;

/// A malformed packed buffer: where and what.
///
/// ```
/// let e = weir_sdk::packed::BatchReader::new(b"").err().unwrap();
/// assert_eq!(e.at, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed packed batch at byte {}: {}", self.at, self.what)
    }
}

impl std::error::Error for PackError {}

/// Key, value and headers of one record.
type Payload<'a> = (Option<&'a [u8]>, &'a [u8], Headers<'a>);

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PackError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(PackError { at: self.pos, what })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PackError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PackError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, PackError> {
        self.array(what).map(i32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PackError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, PackError> {
        self.array(what).map(i64::from_le_bytes)
    }

    fn str(&mut self, n: usize, what: &'static str) -> Result<&'a str, PackError> {
        let at = self.pos;
        core::str::from_utf8(self.take(n, what)?).map_err(|_| PackError {
            at,
            what: "text is not UTF-8",
        })
    }

    /// Reads `KEY_LEN VALUE_LEN HEADERS key value headers`, the tail shared by input and
    /// output records.
    fn payload(&mut self) -> Result<Payload<'a>, PackError> {
        let key_len = self.i32("key length")?;
        let value_len = self.u32("value length")? as usize;
        let header_count = self.u32("header count")?;
        let key = match key_len {
            -1 => None,
            n if n >= 0 => Some(self.take(n as usize, "key")?),
            _ => {
                return Err(PackError {
                    at: self.pos,
                    what: "negative key length",
                });
            }
        };
        let value = self.take(value_len, "value")?;
        Ok((key, value, self.headers(header_count)?))
    }

    /// Skips over `count` headers and returns their bytes.
    fn headers(&mut self, count: u32) -> Result<Headers<'a>, PackError> {
        let start = self.pos;
        for _ in 0..count {
            let n = self.u32("header name length")? as usize;
            self.str(n, "header name")?;
            let n = self.u32("header value length")? as usize;
            self.take(n, "header value")?;
        }
        Ok(Headers {
            bytes: &self.buf[start..self.pos],
            count,
        })
    }
}

/// The headers of a record, read in place. Iterates `(name, value)`.
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    bytes: &'a [u8],
    count: u32,
}

impl<'a> Headers<'a> {
    /// No headers.
    ///
    /// ```
    /// assert!(weir_sdk::Headers::EMPTY.is_empty());
    /// ```
    pub const EMPTY: Headers<'static> = Headers { bytes: &[], count: 0 };

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value of the first header named `name`.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Headers::EMPTY.get("h"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            cursor: Cursor {
                buf: self.bytes,
                pos: 0,
            },
            left: self.count,
        }
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over validated headers, from [`Headers::iter`].
///
/// ```
/// assert_eq!(weir_sdk::Headers::EMPTY.iter().count(), 0);
/// ```
pub struct HeaderIter<'a> {
    cursor: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated when the headers were first read, so these cannot fail.
        let n = self.cursor.u32("").ok()? as usize;
        let name = self.cursor.str(n, "").ok()?;
        let n = self.cursor.u32("").ok()? as usize;
        Some((name, self.cursor.take(n, "").ok()?))
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    put_u32(buf, u32::try_from(n).expect("a packed field is below 4 GiB"));
}

fn put_key(buf: &mut Vec<u8>, key: Option<&[u8]>) {
    match key {
        Some(k) => buf.extend_from_slice(&i32::try_from(k.len()).expect("a key is below 2 GiB").to_le_bytes()),
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
}

/// Writes headers after a placeholder count at `count_at`, then patches the count in.
fn put_headers<'h>(buf: &mut Vec<u8>, count_at: usize, headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) {
    let mut count = 0u32;
    for (name, value) in headers {
        put_len(buf, name.len());
        buf.extend_from_slice(name.as_bytes());
        put_len(buf, value.len());
        buf.extend_from_slice(value);
        count += 1;
    }
    buf[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
}

mod input;
mod output;

pub use input::{BatchReader, BatchWriter, Record};
pub use output::{Mark, OutputReader, OutputRecord, OutputWriter};

#[cfg(test)]
mod tests;
