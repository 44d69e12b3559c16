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

struct Cursor<'a> {
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

/// A record of an input batch, borrowed from the batch buffer.
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The input topic.
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Headers<'a>,
}

impl<'a> Record<'a> {
    /// The value as UTF-8 text.
    ///
    /// ```
    /// # let mut w = weir_sdk::packed::BatchWriter::new("t", 0, 0);
    /// # w.push(0, 0, None, b"hi", []);
    /// # let b = w.finish();
    /// let r = weir_sdk::packed::BatchReader::new(&b).unwrap().next().unwrap().unwrap();
    /// assert_eq!(r.value_str(), Ok("hi"));
    /// ```
    pub fn value_str(&self) -> Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(self.value)
    }

    /// The key as UTF-8 text, if there is a key.
    ///
    /// ```
    /// # let mut w = weir_sdk::packed::BatchWriter::new("t", 0, 0);
    /// # w.push(0, 0, Some(b"k"), b"v", []);
    /// # let b = w.finish();
    /// let r = weir_sdk::packed::BatchReader::new(&b).unwrap().next().unwrap().unwrap();
    /// assert_eq!(r.key_str(), Some(Ok("k")));
    /// ```
    pub fn key_str(&self) -> Option<Result<&'a str, core::str::Utf8Error>> {
        self.key.map(core::str::from_utf8)
    }
}

/// Reads an input batch in place: [`BatchReader::new`] checks the header, iteration yields
/// records (or one error, then stops).
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
pub struct BatchReader<'a> {
    cursor: Cursor<'a>,
    topic: &'a str,
    partition: u32,
    left: u32,
}

impl<'a> BatchReader<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, PackError> {
        let mut cursor = Cursor { buf, pos: 0 };
        if cursor.u32("version")? != VERSION {
            return Err(PackError {
                at: 0,
                what: "unknown packed batch version",
            });
        }
        let n = cursor.u32("topic length")? as usize;
        let topic = cursor.str(n, "topic")?;
        let partition = cursor.u32("partition")?;
        let left = cursor.u32("record count")?;
        Ok(Self {
            cursor,
            topic,
            partition,
            left,
        })
    }

    /// Records not yet read.
    pub fn remaining(&self) -> usize {
        self.left as usize
    }

    fn read(&mut self) -> Result<Record<'a>, PackError> {
        let c = &mut self.cursor;
        let offset = c.u64("offset")?;
        let timestamp = c.i64("timestamp")?;
        let (key, value, headers) = c.payload()?;
        Ok(Record {
            topic: self.topic,
            partition: self.partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<Record<'a>, PackError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = self.read();
        self.left = if r.is_ok() { self.left - 1 } else { 0 };
        Some(r)
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

/// Builds an input batch (the broker's side, and the SDK's test harness).
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
pub struct BatchWriter {
    buf: Vec<u8>,
    count_at: usize,
    count: u32,
}

impl BatchWriter {
    pub fn new(topic: &str, partition: u32, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 16 + topic.len());
        put_u32(&mut buf, VERSION);
        put_len(&mut buf, topic.len());
        buf.extend_from_slice(topic.as_bytes());
        put_u32(&mut buf, partition);
        let count_at = buf.len();
        put_u32(&mut buf, 0);
        Self {
            buf,
            count_at,
            count: 0,
        }
    }

    pub fn push<'h>(
        &mut self,
        offset: u64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let b = &mut self.buf;
        b.reserve(28 + key.map_or(0, <[u8]>::len) + value.len());
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&timestamp.to_le_bytes());
        put_key(b, key);
        put_len(b, value.len());
        let count_at = b.len();
        put_u32(b, 0);
        if let Some(k) = key {
            b.extend_from_slice(k);
        }
        b.extend_from_slice(value);
        put_headers(b, count_at, headers);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Builds the output of one call (the guest's side).
///
/// ```
/// use weir_sdk::packed::{OutputReader, OutputWriter};
/// let mut w = OutputWriter::default();
/// w.push(0, Some(1), None, b"routed", []);
/// w.fail(1, "bad record");
/// let bytes = w.finish();
/// let mut r = OutputReader::new(&bytes).unwrap();
/// assert_eq!(r.next().unwrap().unwrap().output, Some(1));
/// assert!(r.next().is_none());
/// assert_eq!(r.failures().unwrap(), vec![(1, "bad record")]);
/// ```
#[derive(Debug)]
pub struct OutputWriter {
    buf: Vec<u8>,
    count: u32,
    failures: Vec<(u32, String)>,
}

/// A point to roll an [`OutputWriter`] back to.
///
/// ```
/// let mut w = weir_sdk::packed::OutputWriter::default();
/// let mark = w.mark();
/// w.push(0, None, None, b"x", []);
/// w.rollback(mark);
/// assert!(w.is_empty());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    len: usize,
    count: u32,
}

impl Default for OutputWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl OutputWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(64));
        put_u32(&mut buf, 0);
        Self {
            buf,
            count: 0,
            failures: Vec::new(),
        }
    }

    /// Where the output stands now.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            count: self.count,
        }
    }

    /// Drops everything pushed since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.len);
        self.count = mark.count;
    }

    /// Records that input record `input` failed with `message`.
    pub fn fail(&mut self, input: u32, message: impl Into<String>) {
        self.failures.push((input, message.into()));
    }

    pub fn failures(&self) -> usize {
        self.failures.len()
    }

    pub fn push<'h>(
        &mut self,
        input: u32,
        output: Option<u32>,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let b = &mut self.buf;
        b.reserve(20 + key.map_or(0, <[u8]>::len) + value.len());
        put_u32(b, input);
        put_u32(b, output.unwrap_or(DEFAULT_OUTPUT));
        put_key(b, key);
        put_len(b, value.len());
        let count_at = b.len();
        put_u32(b, 0);
        if let Some(k) = key {
            b.extend_from_slice(k);
        }
        b.extend_from_slice(value);
        put_headers(b, count_at, headers);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        put_len(&mut self.buf, self.failures.len());
        for (input, message) in &self.failures {
            put_u32(&mut self.buf, *input);
            put_len(&mut self.buf, message.len());
            self.buf.extend_from_slice(message.as_bytes());
        }
        self.buf
    }
}

/// One emitted record, read in place from an output buffer.
///
/// ```
/// use weir_sdk::packed::{OutputReader, OutputWriter};
/// let mut w = OutputWriter::default();
/// w.push(0, Some(1), None, b"routed", []);
/// w.fail(1, "bad record");
/// let bytes = w.finish();
/// let mut r = OutputReader::new(&bytes).unwrap();
/// assert_eq!(r.next().unwrap().unwrap().output, Some(1));
/// assert!(r.next().is_none());
/// assert_eq!(r.failures().unwrap(), vec![(1, "bad record")]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRecord<'a> {
    /// Index of the input record it was emitted for.
    pub input: u32,
    /// Index into the processor's outputs; `None` for the first.
    pub output: Option<u32>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Headers<'a>,
}

/// Reads a guest's output buffer (the broker's side), validating as it goes.
///
/// ```
/// use weir_sdk::packed::{OutputReader, OutputWriter};
/// let mut w = OutputWriter::default();
/// w.push(0, Some(1), None, b"routed", []);
/// w.fail(1, "bad record");
/// let bytes = w.finish();
/// let mut r = OutputReader::new(&bytes).unwrap();
/// assert_eq!(r.next().unwrap().unwrap().output, Some(1));
/// assert!(r.next().is_none());
/// assert_eq!(r.failures().unwrap(), vec![(1, "bad record")]);
/// ```
pub struct OutputReader<'a> {
    cursor: Cursor<'a>,
    left: u32,
}

impl<'a> OutputReader<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, PackError> {
        let mut cursor = Cursor { buf, pos: 0 };
        let left = cursor.u32("record count")?;
        Ok(Self { cursor, left })
    }

    pub fn remaining(&self) -> usize {
        self.left as usize
    }

    fn read(&mut self) -> Result<OutputRecord<'a>, PackError> {
        let c = &mut self.cursor;
        let input = c.u32("input index")?;
        let output = c.u32("output")?;
        let (key, value, headers) = c.payload()?;
        Ok(OutputRecord {
            input,
            output: (output != DEFAULT_OUTPUT).then_some(output),
            key,
            value,
            headers,
        })
    }

    /// After every record was read: the failed input records `(index, message)`. Checks that
    /// nothing follows them.
    pub fn failures(mut self) -> Result<Vec<(u32, &'a str)>, PackError> {
        if self.left != 0 {
            return Err(PackError {
                at: self.cursor.pos,
                what: "failures read before every record",
            });
        }
        let count = self.cursor.u32("failure count")?;
        let mut out = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let input = self.cursor.u32("failed input index")?;
            let n = self.cursor.u32("failure message length")? as usize;
            out.push((input, self.cursor.str(n, "failure message")?));
        }
        if self.cursor.pos != self.cursor.buf.len() {
            return Err(PackError {
                at: self.cursor.pos,
                what: "bytes after the failures",
            });
        }
        Ok(out)
    }
}

impl<'a> Iterator for OutputReader<'a> {
    type Item = Result<OutputRecord<'a>, PackError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = self.read();
        self.left = if r.is_ok() { self.left - 1 } else { 0 };
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_batches_round_trip_in_place() {
        let mut w = BatchWriter::new("orders", 3, 0);
        w.push(10, 1_700, Some(b"k"), b"v1", [("h", &b"x"[..]), ("bin", &[0xff][..])]);
        w.push(11, -5, None, b"", []);
        let bytes = w.finish();
        let r = BatchReader::new(&bytes).unwrap();
        assert_eq!(r.remaining(), 2);
        let got: Vec<_> = r.map(Result::unwrap).collect();
        assert_eq!(got[0].topic, "orders");
        assert_eq!(got[0].partition, 3);
        assert_eq!(
            (got[0].offset, got[0].timestamp, got[0].key, got[0].value),
            (10, 1_700, Some(&b"k"[..]), &b"v1"[..])
        );
        assert_eq!(got[0].headers.get("bin"), Some(&[0xff][..]));
        assert_eq!(got[0].headers.iter().count(), 2);
        assert_eq!((got[1].key, got[1].value, got[1].headers.len()), (None, &b""[..], 0));
    }

    #[test]
    fn outputs_round_trip_with_their_output_index() {
        let mut w = OutputWriter::default();
        w.push(0, None, None, b"a", []);
        let mark = w.mark();
        w.push(1, None, None, b"dropped", []);
        w.rollback(mark);
        w.fail(1, "bad record");
        w.push(2, Some(2), Some(b"k"), b"b", [("n", &b"1"[..])]);
        let bytes = w.finish();
        let mut r = OutputReader::new(&bytes).unwrap();
        let a = r.next().unwrap().unwrap();
        let b = r.next().unwrap().unwrap();
        assert!(r.next().is_none());
        assert_eq!(r.failures().unwrap(), vec![(1, "bad record")]);
        assert_eq!((a.input, a.output, a.value), (0, None, &b"a"[..]));
        assert_eq!(b.input, 2);
        assert_eq!(
            (b.output, b.key, b.headers.get("n")),
            (Some(2), Some(&b"k"[..]), Some(&b"1"[..]))
        );
    }

    #[test]
    fn truncated_or_lying_buffers_are_errors_not_panics() {
        let mut w = BatchWriter::new("t", 0, 0);
        w.push(1, 2, Some(b"key"), b"value", [("h", &b"v"[..])]);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let ok = BatchReader::new(&bytes[..cut]).map(|r| r.collect::<Result<Vec<_>, _>>().is_ok());
            assert!(!matches!(ok, Ok(true)), "cut at {cut} decoded");
        }
        let mut out = OutputWriter::default();
        out.push(0, None, None, b"x", []);
        let mut bytes = out.finish();
        bytes[0] = 5; // claims five records
        let results: Vec<_> = OutputReader::new(&bytes).unwrap().collect();
        assert!(results.last().unwrap().is_err());
    }
}
