//! The output side: what a guest emits and which records it failed on.

use super::{Cursor, DEFAULT_OUTPUT, Headers, PackError, put_headers, put_key, put_len, put_u32};

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

    /// Pushes a record whose headers are already packed (an input record's, passed on): the
    /// header bytes are copied as they are instead of being encoded one by one.
    ///
    /// ```
    /// use weir_sdk::packed::{BatchReader, BatchWriter, OutputReader, OutputWriter};
    /// let mut w = BatchWriter::new("t", 0, 64);
    /// w.push(0, 0, Some(b"k"), b"v", [("h", &b"1"[..])]);
    /// let batch = w.finish();
    /// let r = BatchReader::new(&batch).unwrap().next().unwrap().unwrap();
    /// let mut out = OutputWriter::default();
    /// out.push_packed_headers(0, None, r.key, r.value, r.headers);
    /// let bytes = out.finish();
    /// let o = OutputReader::new(&bytes).unwrap().next().unwrap().unwrap();
    /// assert_eq!((o.key, o.value, o.headers.get("h")), (Some(&b"k"[..]), &b"v"[..], Some(&b"1"[..])));
    /// ```
    pub fn push_packed_headers(
        &mut self,
        input: u32,
        output: Option<u32>,
        key: Option<&[u8]>,
        value: &[u8],
        headers: super::Headers<'_>,
    ) {
        let key_len = key.map_or(0, <[u8]>::len);
        let b = &mut self.buf;
        b.reserve(20 + key_len + value.len() + headers.bytes.len());
        // INPUT, OUTPUT, KEY_LEN, VALUE_LEN, HEADERS in one write.
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(&input.to_le_bytes());
        head[4..8].copy_from_slice(&output.unwrap_or(DEFAULT_OUTPUT).to_le_bytes());
        let key_field = key.map_or(-1, |k| i32::try_from(k.len()).expect("a key is below 2 GiB"));
        head[8..12].copy_from_slice(&key_field.to_le_bytes());
        let value_len = u32::try_from(value.len()).expect("a value is below 4 GiB");
        head[12..16].copy_from_slice(&value_len.to_le_bytes());
        head[16..20].copy_from_slice(&headers.count.to_le_bytes());
        b.extend_from_slice(&head);
        if let Some(k) = key {
            b.extend_from_slice(k);
        }
        b.extend_from_slice(value);
        b.extend_from_slice(headers.bytes);
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
