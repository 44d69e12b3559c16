//! The record batch codec: Kafka's RecordBatch v2 ("magic 2") byte for byte, so that a later
//! Kafka-protocol Fetch can send segment bytes as they lie on disk.
//!
//! ```text
//! batch header (all integers big-endian), offsets derived one from the previous:
//!   BASE_OFFSET       0  i64  offset of the first record
//!   BATCH_LENGTH      8  i32  bytes after this field (LEADER_EPOCH .. end of records)
//!   LEADER_EPOCH     12  i32  always 0 (no replication yet)
//!   MAGIC            16  i8   always 2
//!   CRC              17  u32  CRC32C of ATTRIBUTES .. end of records
//!   ATTRIBUTES       21  i16  bits 0-2 compression (0: none; the only kind written), bit 3
//!                               timestamp type (0: CreateTime), bit 4 transactional, bit 5
//!                               control (a COMMIT or ABORT marker), other bits 0
//!   LAST_DELTA       23  i32  offset of the last record minus BASE_OFFSET
//!   BASE_TIMESTAMP   27  i64  timestamp (ms) of the first record
//!   MAX_TIMESTAMP    35  i64  largest timestamp in the batch
//!   PRODUCER_ID      43  i64  the transactional producer, or -1
//!   PRODUCER_EPOCH   51  i16  its epoch (a newer one fences older ones), or -1
//!   BASE_SEQUENCE    53  i32  -1 (no idempotent sequences yet)
//!   RECORD_COUNT     57  i32  number of records
//!   records          61  RECORD_COUNT times:
//!     length varint (bytes after itself), attributes i8 (0),
//!     timestamp_delta varlong, offset_delta varint,
//!     key_len varint (-1: no key), key, value_len varint (-1: no value, a tombstone), value,
//!     header_count varint, then per header: name_len varint, name (UTF-8), value_len varint, value
//!
//! control batch (ATTRIBUTES 0x30): one record whose
//!   key   = version i16 (0), type i16 (0: ABORT, 1: COMMIT)
//!   value = version i16 (0), coordinator epoch i32 (0)
//! ```

use super::varint::{get_varint, get_varlong, put_varint, put_varlong, varlong_len};
pub use crate::record::{NewRecord, RecordView};

pub const BASE_OFFSET: usize = 0;
pub const BATCH_LENGTH: usize = BASE_OFFSET + 8;
pub const LEADER_EPOCH: usize = BATCH_LENGTH + 4;
pub const MAGIC: usize = LEADER_EPOCH + 4;
pub const CRC: usize = MAGIC + 1;
pub const ATTRIBUTES: usize = CRC + 4;
pub const LAST_DELTA: usize = ATTRIBUTES + 2;
pub const BASE_TIMESTAMP: usize = LAST_DELTA + 4;
pub const MAX_TIMESTAMP: usize = BASE_TIMESTAMP + 8;
pub const PRODUCER_ID: usize = MAX_TIMESTAMP + 8;
pub const PRODUCER_EPOCH: usize = PRODUCER_ID + 8;
pub const BASE_SEQUENCE: usize = PRODUCER_EPOCH + 2;
pub const RECORD_COUNT: usize = BASE_SEQUENCE + 4;
/// Size of the fixed batch header; records start here.
pub const HEADER_BYTES: usize = RECORD_COUNT + 4;
/// Bytes of the header that precede the length-counted part (base offset and length itself).
pub const LOG_OVERHEAD: usize = LEADER_EPOCH;
/// The only format version we write or accept.
pub const MAGIC_V2: u8 = 2;

/// Most payload bytes (keys, values, headers) one stored batch holds: a producer's request is
/// split into batches of at most this much (one record may be larger alone). A reader always
/// takes at least one whole batch, so this bounds what one fetch or SSE event reads at once.
/// Kafka's default `max.message.bytes` is about the same.
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Splits `records` into runs of at most [`BATCH_BYTES_MAX`] payload bytes (each at least one
/// record), in order.
pub fn batch_runs(records: &[NewRecord]) -> impl Iterator<Item = &[NewRecord]> {
    let mut rest = records;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        for r in rest {
            bytes += r.payload_bytes();
            if n > 0 && bytes > BATCH_BYTES_MAX {
                break;
            }
            n += 1;
        }
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL: i16 = 0x10;
/// Attribute bit of a control batch (a transaction marker).
pub const CONTROL: i16 = 0x20;
/// Attribute bits of the compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;

/// A transactional producer: its id and epoch, as a batch header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
}

/// What a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Records outside any transaction.
    Plain,
    /// Records of `producer`'s open transaction: readers that see only committed records wait
    /// for its marker.
    Transactional(Producer),
    /// The marker that ends `producer`'s transaction: COMMIT (`commit`) or ABORT.
    Marker { producer: Producer, commit: bool },
}

impl BatchKind {
    pub fn producer(&self) -> Option<Producer> {
        match self {
            Self::Plain => None,
            Self::Transactional(p) | Self::Marker { producer: p, .. } => Some(*p),
        }
    }
}

/// Why a stretch of bytes is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch header cut short: {available} of {HEADER_BYTES} bytes")]
    ShortHeader { available: usize },
    #[error("batch length {length} is impossible")]
    BadLength { length: i64 },
    #[error("batch body cut short: {available} of {needed} bytes")]
    ShortBody { available: usize, needed: usize },
    #[error("unsupported batch format magic {magic}")]
    BadMagic { magic: u8 },
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record {index} of the batch is malformed")]
    BadRecord { index: usize },
}

/// The fixed fields of a batch, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Whole batch size on disk, header included.
    pub total_bytes: usize,
    pub last_offset_delta: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: u32,
    pub attributes: i16,
    /// -1 outside transactions.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl BatchHeader {
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    /// The producer of a transactional batch.
    pub fn producer(&self) -> Option<Producer> {
        self.is_transactional().then_some(Producer {
            id: self.producer_id,
            epoch: self.producer_epoch,
        })
    }

    /// Offset one past the batch's last record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta) + 1
    }

    /// Parses the fixed header at the start of `buf` (no checksum check: see [`verify`]).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::ShortHeader { available: buf.len() });
        }
        let length = i64::from(be_i32(buf, BATCH_LENGTH));
        let min = (HEADER_BYTES - LOG_OVERHEAD) as i64;
        if length < min {
            return Err(BatchError::BadLength { length });
        }
        if buf[MAGIC] != MAGIC_V2 {
            return Err(BatchError::BadMagic { magic: buf[MAGIC] });
        }
        let count = be_i32(buf, RECORD_COUNT);
        let last = be_i32(buf, LAST_DELTA);
        // Compaction leaves batches with fewer records than offsets, never more.
        if count <= 0 || last < count - 1 {
            return Err(BatchError::BadLength { length });
        }
        Ok(Self {
            base_offset: be_i64(buf, BASE_OFFSET) as u64,
            total_bytes: LOG_OVERHEAD + length as usize,
            last_offset_delta: last as u32,
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            record_count: count as u32,
            attributes: i16::from_be_bytes(fixed(buf, ATTRIBUTES)),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: i16::from_be_bytes(fixed(buf, PRODUCER_EPOCH)),
        })
    }
}

/// Parses the header at the start of `buf` and checks that the whole batch is there and its
/// CRC32C matches. Recovery calls this on every batch of an unverified tail.
pub fn verify(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if buf.len() < header.total_bytes {
        return Err(BatchError::ShortBody {
            available: buf.len(),
            needed: header.total_bytes,
        });
    }
    let stored = u32::from_be_bytes(fixed(buf, CRC));
    let computed = crc32c::crc32c(&buf[ATTRIBUTES..header.total_bytes]);
    if stored != computed {
        return Err(BatchError::BadCrc { stored, computed });
    }
    Ok(header)
}

/// Appends one batch holding `records` (at least one) starting at `base_offset`. Records
/// without a timestamp get `now_ms`. Returns the header of what was written.
pub fn encode(out: &mut Vec<u8>, base_offset: u64, records: &[NewRecord], now_ms: i64) -> BatchHeader {
    encode_kind(out, base_offset, records, now_ms, BatchKind::Plain)
}

/// The control record of a marker: its key (version, type) and value (version, coordinator
/// epoch), as Kafka lays them out.
fn marker_record(commit: bool, now_ms: i64) -> NewRecord {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&0i32.to_be_bytes());
    NewRecord {
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
        timestamp: Some(now_ms),
    }
}

/// Whether a control batch's record says COMMIT (`Some(true)`) or ABORT (`Some(false)`);
/// `None` for anything else.
pub fn marker_type(batch: &[u8]) -> Option<bool> {
    let mut recs = records(batch).ok()?;
    let r = recs.next()?.ok()?;
    match r.key? {
        [0, 0, 0, 1] => Some(true),
        [0, 0, 0, 0] => Some(false),
        _ => None,
    }
}

/// Appends one batch of `kind`: `records` (at least one) for plain and transactional
/// batches; for a marker, `records` is ignored and the control record written.
pub fn encode_kind(
    out: &mut Vec<u8>,
    base_offset: u64,
    records: &[NewRecord],
    now_ms: i64,
    kind: BatchKind,
) -> BatchHeader {
    let marker;
    let records = match kind {
        BatchKind::Marker { commit, .. } => {
            marker = [marker_record(commit, now_ms)];
            &marker[..]
        }
        _ => records,
    };
    let (attributes, producer) = match kind {
        BatchKind::Plain => (0i16, None),
        BatchKind::Transactional(p) => (TRANSACTIONAL, Some(p)),
        BatchKind::Marker { producer, .. } => (TRANSACTIONAL | CONTROL, Some(producer)),
    };
    assert!(!records.is_empty(), "a batch holds at least one record");
    assert!(records.len() <= i32::MAX as usize, "record count fits the i32 field");
    let start = out.len();
    let ts = |r: &NewRecord| r.timestamp.unwrap_or(now_ms);
    let base_timestamp = ts(&records[0]);
    let max_timestamp = records.iter().map(ts).max().unwrap_or(base_timestamp);
    let last_delta = (records.len() - 1) as i32;

    out.reserve(HEADER_BYTES + records.iter().map(|r| r.payload_bytes() + 16).sum::<usize>());
    out.extend_from_slice(&(base_offset as i64).to_be_bytes());
    out.extend_from_slice(&[0; 4]); // BATCH_LENGTH, patched below
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(MAGIC_V2);
    out.extend_from_slice(&[0; 4]); // CRC, patched below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&last_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&producer.map_or(-1, |p| p.id).to_be_bytes());
    out.extend_from_slice(&producer.map_or(-1, |p| p.epoch).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    debug_assert_eq!(out.len() - start, HEADER_BYTES);

    for (delta, record) in records.iter().enumerate() {
        encode_record(out, record, ts(record) - base_timestamp, delta as i32);
    }

    let total = out.len() - start;
    let length = i32::try_from(total - LOG_OVERHEAD).expect("batch fits i32 length");
    out[start + BATCH_LENGTH..start + BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES..]);
    out[start + CRC..start + CRC + 4].copy_from_slice(&crc.to_be_bytes());
    BatchHeader {
        base_offset,
        total_bytes: total,
        last_offset_delta: last_delta as u32,
        base_timestamp,
        max_timestamp,
        record_count: records.len() as u32,
        attributes,
        producer_id: producer.map_or(-1, |p| p.id),
        producer_epoch: producer.map_or(-1, |p| p.epoch),
    }
}

/// Makes a whole transactional batch a plain one (compaction does, for committed transactions
/// below the last stable offset, so that their markers can go): clears the attribute and
/// recomputes the CRC.
pub fn clear_transactional(batch: &mut [u8]) {
    let attributes = i16::from_be_bytes(fixed(batch, ATTRIBUTES)) & !TRANSACTIONAL;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Re-encodes batch `h` with only the records `kept` (their offsets and timestamps as stored):
/// the same base offset, last offset delta, attributes and producer, so offsets never move
/// (compaction). `kept` must be non-empty, in offset order, within the batch.
pub fn encode_sparse(out: &mut Vec<u8>, h: &BatchHeader, kept: &[(u64, NewRecord)]) -> BatchHeader {
    assert!(!kept.is_empty(), "a batch holds at least one record");
    let start = out.len();
    let ts = |r: &NewRecord| r.timestamp.unwrap_or(h.base_timestamp);
    let base_timestamp = ts(&kept[0].1);
    let max_timestamp = kept.iter().map(|(_, r)| ts(r)).max().unwrap_or(base_timestamp);
    out.extend_from_slice(&(h.base_offset as i64).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(MAGIC_V2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&h.attributes.to_be_bytes());
    out.extend_from_slice(&(h.last_offset_delta as i32).to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&(kept.len() as i32).to_be_bytes());
    for (offset, r) in kept {
        encode_record(out, r, ts(r) - base_timestamp, (offset - h.base_offset) as i32);
    }
    let total = out.len() - start;
    let length = i32::try_from(total - LOG_OVERHEAD).expect("batch fits i32 length");
    out[start + BATCH_LENGTH..start + BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES..]);
    out[start + CRC..start + CRC + 4].copy_from_slice(&crc.to_be_bytes());
    BatchHeader {
        base_offset: h.base_offset,
        total_bytes: total,
        last_offset_delta: h.last_offset_delta,
        base_timestamp,
        max_timestamp,
        record_count: kept.len() as u32,
        attributes: h.attributes,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
    }
}

fn encode_record(out: &mut Vec<u8>, r: &NewRecord, ts_delta: i64, offset_delta: i32) {
    let bytes_len = |n: usize| varlong_len(n as i64) + n;
    let key_len = r.key.as_ref().map_or(varlong_len(-1), |k| bytes_len(k.len()));
    let headers_len: usize = r
        .headers
        .iter()
        .map(|(n, v)| bytes_len(n.len()) + bytes_len(v.len()))
        .sum();
    let value_len = r.value.as_ref().map_or(varlong_len(-1), |v| bytes_len(v.len()));
    let body = 1
        + varlong_len(ts_delta)
        + varlong_len(i64::from(offset_delta))
        + key_len
        + value_len
        + varlong_len(r.headers.len() as i64)
        + headers_len;
    put_varint(out, body as i32);
    let body_start = out.len();
    out.push(0);
    put_varlong(out, ts_delta);
    put_varint(out, offset_delta);
    match &r.key {
        Some(k) => put_bytes(out, k),
        None => put_varint(out, -1),
    }
    match &r.value {
        Some(v) => put_bytes(out, v),
        None => put_varint(out, -1),
    }
    put_varint(out, r.headers.len() as i32);
    for (name, value) in &r.headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value);
    }
    debug_assert_eq!(out.len() - body_start, body);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as i32);
    out.extend_from_slice(bytes);
}

/// Iterates over the records of one whole, verified batch.
pub fn records(batch: &[u8]) -> Result<RecordIter<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.total_bytes {
        return Err(BatchError::ShortBody {
            available: batch.len(),
            needed: header.total_bytes,
        });
    }
    Ok(RecordIter {
        buf: &batch[..header.total_bytes],
        pos: HEADER_BYTES,
        index: 0,
        header,
    })
}

/// Iterator over a batch's records; yields an error once and then stops if a record is bad.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    index: usize,
    header: BatchHeader,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.header.record_count as usize {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match self.decode_one() {
            Some(r) => Some(Ok(r)),
            None => {
                self.index = usize::MAX;
                Some(Err(BatchError::BadRecord { index }))
            }
        }
    }
}

impl<'a> RecordIter<'a> {
    fn decode_one(&mut self) -> Option<RecordView<'a>> {
        let buf = self.buf;
        let length = usize::try_from(get_varint(buf, &mut self.pos)?).ok()?;
        let end = self.pos.checked_add(length).filter(|&e| e <= buf.len())?;
        let rec = &buf[..end];
        let mut pos = self.pos + 1; // attributes
        let ts_delta = get_varlong(rec, &mut pos)?;
        let offset_delta = u64::try_from(get_varint(rec, &mut pos)?).ok()?;
        let key = match get_varint(rec, &mut pos)? {
            -1 => None,
            n => Some(take(rec, &mut pos, usize::try_from(n).ok()?)?),
        };
        let value = match get_varint(rec, &mut pos)? {
            -1 => None,
            n => Some(take(rec, &mut pos, usize::try_from(n).ok()?)?),
        };
        let header_count = usize::try_from(get_varint(rec, &mut pos)?).ok()?;
        let mut headers = Vec::with_capacity(header_count.min(64));
        for _ in 0..header_count {
            let n = usize::try_from(get_varint(rec, &mut pos)?).ok()?;
            let name = std::str::from_utf8(take(rec, &mut pos, n)?).ok()?;
            let n = usize::try_from(get_varint(rec, &mut pos)?).ok()?;
            headers.push((name, take(rec, &mut pos, n)?));
        }
        if pos != end {
            return None;
        }
        self.pos = end;
        Some(RecordView {
            offset: self.header.base_offset + offset_delta,
            timestamp: self.header.base_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers,
        })
    }
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(n).filter(|&e| e <= buf.len())?;
    let out = &buf[*pos..end];
    *pos = end;
    Some(out)
}

fn fixed<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(fixed(buf, at))
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(fixed(buf, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<NewRecord> {
        vec![
            NewRecord {
                key: Some(b"k1".to_vec()),
                value: Some(b"hello".to_vec()),
                headers: vec![],
                timestamp: Some(1_700_000_000_000),
            },
            NewRecord {
                key: None,
                value: Some(vec![0, 159, 146, 150]),
                headers: vec![("trace".into(), b"abc".to_vec()), ("bin".into(), vec![255])],
                timestamp: Some(1_699_999_999_000),
            },
            NewRecord {
                key: Some(vec![]),
                value: None,
                headers: vec![],
                timestamp: None,
            },
        ]
    }

    #[test]
    fn batch_round_trips_keys_values_headers_and_timestamps() {
        let mut buf = Vec::new();
        let header = encode(&mut buf, 42, &sample(), 1_800_000_000_000);
        assert_eq!(header.total_bytes, buf.len());
        assert_eq!(verify(&buf), Ok(header));
        assert_eq!(header.next_offset(), 45);
        assert_eq!(header.max_timestamp, 1_800_000_000_000);
        let got: Vec<_> = records(&buf).unwrap().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].offset, 42);
        assert_eq!(got[0].key, Some(&b"k1"[..]));
        assert_eq!(got[1].timestamp, 1_699_999_999_000);
        assert_eq!(got[1].headers, vec![("trace", &b"abc"[..]), ("bin", &[255u8][..])]);
        assert_eq!(got[2].offset, 44);
        assert_eq!(got[2].key, Some(&b""[..]));
        assert_eq!(got[2].value, None, "a tombstone stays a tombstone");
        assert_eq!(got[0].value, Some(&b"hello"[..]));
        assert_eq!(got[2].timestamp, 1_800_000_000_000);
    }

    #[test]
    fn header_offsets_match_kafka_record_batch_v2() {
        assert_eq!((CRC, ATTRIBUTES, RECORD_COUNT, HEADER_BYTES), (17, 21, 57, 61));
        let mut buf = Vec::new();
        encode(&mut buf, 7, &sample()[..1], 0);
        assert_eq!(buf[MAGIC], 2);
        assert_eq!(i64::from_be_bytes(fixed(&buf, BASE_OFFSET)), 7);
        assert_eq!(be_i32(&buf, BATCH_LENGTH) as usize, buf.len() - 12);
    }

    #[test]
    fn any_flipped_byte_is_caught_by_length_magic_or_crc() {
        let mut buf = Vec::new();
        encode(&mut buf, 0, &sample(), 5);
        // As in Kafka, the CRC leaves out base offset and leader epoch (a broker may rewrite
        // them); recovery checks the base offset against the expected sequence instead.
        for i in (BATCH_LENGTH..BATCH_LENGTH + 4).chain(MAGIC..buf.len()) {
            let mut bad = buf.clone();
            bad[i] ^= 0x41;
            assert!(verify(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn transactional_batches_and_markers_carry_their_producer_and_type() {
        let p = Producer { id: 77, epoch: 3 };
        let mut buf = Vec::new();
        let h = encode_kind(&mut buf, 10, &sample(), 5, BatchKind::Transactional(p));
        assert_eq!(verify(&buf), Ok(h));
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(h.producer(), Some(p));
        assert_eq!(records(&buf).unwrap().count(), 3);
        for commit in [true, false] {
            let mut m = Vec::new();
            let h = encode_kind(&mut m, 13, &[], 6, BatchKind::Marker { producer: p, commit });
            assert_eq!(verify(&m), Ok(h));
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.record_count, h.next_offset()), (1, 14));
            assert_eq!(
                i16::from_be_bytes(fixed(&m, ATTRIBUTES)),
                0x30,
                "Kafka's control attributes"
            );
            assert_eq!(marker_type(&m), Some(commit));
        }
        let mut plain = Vec::new();
        let h = encode(&mut plain, 0, &sample(), 5);
        assert_eq!((h.producer(), h.producer_id, h.producer_epoch), (None, -1, -1));
    }

    #[test]
    fn a_cut_batch_reports_what_is_missing() {
        let mut buf = Vec::new();
        encode(&mut buf, 0, &sample(), 5);
        assert_eq!(verify(&buf[..10]), Err(BatchError::ShortHeader { available: 10 }));
        assert!(matches!(
            verify(&buf[..buf.len() - 1]),
            Err(BatchError::ShortBody { .. })
        ));
    }
}

#[cfg(test)]
mod properties {
    //! The batch codec under arbitrary input: checking and decoding never panic, and encoded
    //! batches decode to what was encoded, through every CRC and length check.

    use proptest::prelude::*;

    use super::*;

    fn new_record() -> impl Strategy<Value = NewRecord> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                ("[a-zA-Z0-9\\-]{0,12}", proptest::collection::vec(any::<u8>(), 0..20)),
                0..4,
            ),
            proptest::option::of(0i64..4_000_000_000_000),
        )
            .prop_map(|(key, value, headers, timestamp)| NewRecord {
                key,
                value,
                headers,
                timestamp,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = BatchHeader::parse(&bytes);
            let _ = verify(&bytes);
            if let Ok(records) = records(&bytes) {
                for r in records {
                    let _ = r;
                }
            }
        }

        #[test]
        fn encoded_batches_decode_to_their_records(base in 0u64..(1 << 40), recs in proptest::collection::vec(new_record(), 1..30), now in 0i64..4_000_000_000_000) {
            let mut buf = Vec::new();
            let h = encode(&mut buf, base, &recs, now);
            prop_assert_eq!(h.total_bytes, buf.len());
            prop_assert_eq!(verify(&buf).unwrap(), h);
            let got: Vec<_> = records(&buf).unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(got.len(), recs.len());
            for (i, (g, r)) in got.iter().zip(&recs).enumerate() {
                prop_assert_eq!(g.offset, base + i as u64);
                prop_assert_eq!(g.timestamp, r.timestamp.unwrap_or(now));
                prop_assert_eq!(g.key, r.key.as_deref());
                prop_assert_eq!(g.value, r.value.as_deref());
                let hs: Vec<(&str, &[u8])> = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
                prop_assert_eq!(&g.headers, &hs);
            }
        }

        #[test]
        fn a_flipped_bit_anywhere_after_the_length_fails_the_check(recs in proptest::collection::vec(new_record(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode(&mut buf, 7, &recs, 1);
            // Base offset and length are outside the CRC (as in Kafka); everything else is in.
            let i = CRC + at.index(buf.len() - CRC);
            buf[i] ^= 1 << bit;
            prop_assert!(verify(&buf).is_err());
        }
    }
}
