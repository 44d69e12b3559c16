//! Emitting records from a processor.

use crate::packed::{Headers, OutputWriter, Record};

/// A record to emit, borrowing its bytes. Built with [`Output::new`] and chained setters.
///
/// ```
/// let out = weir_sdk::Output::new(b"value").key(b"k").header("source", b"weir").to(1);
/// assert_eq!(out.output, Some(1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Output<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Index into the processor's configured outputs; `None` is the first output.
    pub output: Option<u32>,
}

impl<'a> Output<'a> {
    /// A record with this value, no key, no headers, for the first output.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Output::new("text").value, b"text");
    /// ```
    pub fn new(value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self {
            value: value.as_ref(),
            ..Self::default()
        }
    }

    /// Sets the key.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Output::new("v").key("k").key, Some(&b"k"[..]));
    /// ```
    pub fn key(mut self, key: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.key = Some(key.as_ref());
        self
    }

    /// Sets or clears the key (handy for keeping an input record's key).
    ///
    /// ```
    /// assert_eq!(weir_sdk::Output::new("v").key_opt(None).key, None);
    /// ```
    pub fn key_opt(mut self, key: Option<&'a [u8]>) -> Self {
        self.key = key;
        self
    }

    /// Adds a header.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Output::new("v").header("h", "1").headers.len(), 1);
    /// ```
    pub fn header(mut self, name: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.headers.push((name, value.as_ref()));
        self
    }

    /// Adds every header of `headers` (for example an input record's).
    ///
    /// ```
    /// assert!(weir_sdk::Output::new("v").headers(weir_sdk::Headers::EMPTY).headers.is_empty());
    /// ```
    pub fn headers(mut self, headers: Headers<'a>) -> Self {
        self.headers.extend(headers.iter());
        self
    }

    /// Routes the record to output number `index` of the processor's `outputs` list.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Output::new("v").to(2).output, Some(2));
    /// ```
    pub fn to(mut self, index: u32) -> Self {
        self.output = Some(index);
        self
    }
}

/// Collects what a processor emits for a batch, written straight into the packed output.
#[derive(Debug, Default)]
pub struct Emitter {
    writer: OutputWriter,
    /// Index of the input record being processed.
    input: u32,
}

impl Emitter {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            writer: OutputWriter::with_capacity(bytes),
            input: 0,
        }
    }

    pub(crate) fn writer(&mut self) -> &mut OutputWriter {
        &mut self.writer
    }

    pub(crate) fn set_input(&mut self, index: u32) {
        self.input = index;
    }

    /// Emits a record.
    ///
    /// ```
    /// let mut out = weir_sdk::Emitter::default();
    /// out.send(weir_sdk::Output::new("v").key("k"));
    /// assert_eq!(out.len(), 1);
    /// ```
    pub fn send(&mut self, record: Output<'_>) {
        self.writer.push(
            self.input,
            record.output,
            record.key,
            record.value,
            record.headers.iter().copied(),
        );
    }

    /// Emits a record with just this value.
    ///
    /// ```
    /// let mut out = weir_sdk::Emitter::default();
    /// out.emit("hello");
    /// assert_eq!(out.len(), 1);
    /// ```
    pub fn emit(&mut self, value: impl AsRef<[u8]>) {
        self.writer.push(self.input, None, None, value.as_ref(), []);
    }

    /// Emits an input record unchanged (key, value and headers) to the first output.
    ///
    /// ```
    /// # use weir_sdk::testing::TestRecord;
    /// let out = weir_sdk::testing::run_fn(&[TestRecord::value("x")], |r, out| { out.forward(r); Ok(()) }).unwrap();
    /// assert_eq!(out[0].value, b"x");
    /// ```
    pub fn forward(&mut self, record: &Record<'_>) {
        self.writer
            .push_packed_headers(self.input, None, record.key, record.value, record.headers);
    }

    /// Records emitted so far in this batch.
    ///
    /// ```
    /// assert!(weir_sdk::Emitter::default().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.writer.len()
    }

    /// Whether nothing was emitted yet.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Emitter::default().len(), 0);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.writer.finish()
    }
}
