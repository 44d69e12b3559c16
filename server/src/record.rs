//! The record types every layer shares: what a producer appends ([`NewRecord`]) and what a
//! reader gets back ([`RecordView`], borrowed from the batch bytes). No I/O here.
//!
//! A value may be absent (`None`): Kafka's null value, a *tombstone*. Compaction reads it as
//! "delete this key", and HTTP shows it as `"value": null`. An empty value is not a tombstone.

/// A record to append: everything but its offset, which the log assigns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the Unix epoch; `None` means "the time of append".
    pub timestamp: Option<i64>,
}

impl NewRecord {
    /// A record holding `value` and nothing else.
    pub fn with_value(value: impl Into<Vec<u8>>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// Bytes of key, value and headers: what limits and metrics count.
    pub fn payload_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }

    /// The value's bytes; a tombstone reads as empty.
    pub fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }
}

/// A record read back from the log, borrowing from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    /// `None`: a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl RecordView<'_> {
    /// The value's bytes; a tombstone reads as empty.
    pub fn value_bytes(&self) -> &[u8] {
        self.value.unwrap_or_default()
    }

    /// Bytes of key, value and headers.
    pub fn payload_bytes(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }

    /// An owned copy to append elsewhere (a dead letter, say), keeping its timestamp.
    pub fn to_new(&self) -> NewRecord {
        NewRecord {
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
            timestamp: Some(self.timestamp),
        }
    }
}
