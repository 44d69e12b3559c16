//! Windows in event time and the built-in aggregates, as pure functions: what a deployment
//! declares ([`spec`]), the accumulators ([`agg`]), and here the window arithmetic, the keys
//! window state is kept under, event time, and the records a window's result becomes. The
//! processor's operator ([`crate::processor`]) runs them against a task's state.
//!
//! Every window is half-open, `[start, end)`, whatever its type: a session's end is one past
//! its last record. A window closes when the watermark reaches `end + grace` (a session's when
//! it reaches `end + gap + grace`: until then a record could still extend it).

pub mod agg;
pub mod spec;

use serde_json::Value;

use crate::record::{NewRecord, RecordView};
use spec::TimeSource;

/// Event times must lie within this many ms of the epoch (about 35,000 years), so that window
/// arithmetic never overflows.
pub const EVENT_TIME_ABS_MAX: i64 = 1 << 50;

/// Parses a record's value as JSON.
pub fn parse(value: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(value).map_err(|e| format!("the value is not JSON ({e})"))
}

/// A record's event time, from where the deployment says (`doc`: its value parsed, when the
/// source is a JSON path).
pub fn event_time(source: &TimeSource, v: &RecordView<'_>, doc: Option<&Value>) -> Result<i64, String> {
    let t = match source {
        TimeSource::Timestamp(_) => v.timestamp,
        TimeSource::Header { header } => {
            let raw = v
                .headers
                .iter()
                .rev()
                .find(|(n, _)| *n == header)
                .map(|(_, b)| *b)
                .ok_or_else(|| format!("event time: the record has no header '{header}'"))?;
            std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    format!(
                        "event time: header '{header}' is '{}', not milliseconds since the epoch",
                        String::from_utf8_lossy(raw)
                    )
                })?
        }
        TimeSource::Path { path } => {
            let at = doc
                .and_then(|d| d.pointer(path))
                .ok_or_else(|| format!("event time: the value has nothing at {path}"))?;
            at.as_i64()
                .or_else(|| {
                    at.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() <= EVENT_TIME_ABS_MAX as f64)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| format!("event time: the value at {path} is {at}, not milliseconds since the epoch"))?
        }
    };
    if !(-EVENT_TIME_ABS_MAX..=EVENT_TIME_ABS_MAX).contains(&t) {
        return Err(format!(
            "event time {t} is out of range (at most {EVENT_TIME_ABS_MAX} ms from the epoch)"
        ));
    }
    Ok(t)
}

/// The starts of the hopping windows `[s, s + size)` holding `t`, latest first (tumbling:
/// `advance == size`, one window).
pub fn hopping_starts(t: i64, size: i64, advance: i64) -> impl Iterator<Item = i64> {
    let last = t.div_euclid(advance) * advance;
    std::iter::successors(Some(last), move |s| Some(s - advance)).take_while(move |s| *s > t - size)
}

/// A group key as window state keys begin with it: `0` for no key, or `1`, its length (u32
/// big-endian) and its bytes; so one key's windows are one range, ordered by start.
pub fn group_prefix(key: Option<&[u8]>) -> Vec<u8> {
    match key {
        None => vec![0],
        Some(k) => {
            let mut out = Vec::with_capacity(5 + k.len() + 16);
            out.push(1);
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
            out
        }
    }
}

/// Appends a time that sorts like an i64 (sign bit flipped, big-endian).
pub fn put_time(out: &mut Vec<u8>, t: i64) {
    out.extend_from_slice(&((t as u64) ^ (1 << 63)).to_be_bytes());
}

fn time_at(b: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// A window's state key: the group prefix, then its start.
pub fn window_key(key: Option<&[u8]>, start: i64) -> Vec<u8> {
    let mut k = group_prefix(key);
    put_time(&mut k, start);
    k
}

/// A session's state key: the group prefix, its start, then its end. The end is part of the
/// key because a session that closed and one made after it may start at the same time (a late
/// record extending a newer session backwards): they are two sessions, two results.
pub fn session_key(key: Option<&[u8]>, start: i64, end: i64) -> Vec<u8> {
    let mut k = window_key(key, start);
    put_time(&mut k, end);
    k
}

/// The group key and the start of a window state key.
pub fn split_window_key(k: &[u8]) -> Option<(Option<&[u8]>, i64)> {
    let (key, rest) = split_group(k)?;
    Some((key, time_at(rest)?))
}

/// The group key of a state key and what follows it.
pub fn split_group(k: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    match *k.first()? {
        0 => Some((None, &k[1..])),
        1 => {
            let n = u32::from_be_bytes(k.get(1..5)?.try_into().ok()?) as usize;
            let key = k.get(5..5 + n)?;
            Some((Some(key), &k[5 + n..]))
        }
        _ => None,
    }
}

/// The key of a buffered record of a sliding window: group prefix, event time, input offset.
pub fn record_key(key: Option<&[u8]>, t: i64, offset: u64) -> Vec<u8> {
    let mut k = group_prefix(key);
    put_time(&mut k, t);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The event time of a buffered record's key.
pub fn record_time(k: &[u8]) -> Option<i64> {
    let (_, rest) = split_group(k)?;
    time_at(rest)
}

/// What timers of a windowed task mean: the first byte of their key, then a state key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TimerKind {
    /// The window closes: emit it (`emit: final`) and take no more records.
    Close = b'C',
    /// Its retention ended: forget it.
    Expire = b'E',
    /// A sliding window's buffered record can no longer be in an open window.
    Forget = b'R',
}

pub fn timer_key(kind: TimerKind, state_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + state_key.len());
    k.push(kind as u8);
    k.extend_from_slice(state_key);
    k
}

pub fn split_timer_key(k: &[u8]) -> Option<(TimerKind, &[u8])> {
    let kind = match *k.first()? {
        b'C' => TimerKind::Close,
        b'E' => TimerKind::Expire,
        b'R' => TimerKind::Forget,
        _ => return None,
    };
    Some((kind, &k[1..]))
}

/// The output record of an aggregate: the group key as its key; as its value a JSON object
/// with the key (as text, or `key_base64`), the window's bounds and the result fields; the
/// bounds in headers too (`weir-window-start`, `weir-window-end`, ms as decimal text).
/// `fields` are JSON members, each after a comma, as [`agg::finish`] writes them.
pub fn result_record(key: Option<&[u8]>, window: Option<(i64, i64)>, fields: &[u8], timestamp: i64) -> NewRecord {
    let mut v = Vec::with_capacity(48 + key.map_or(0, <[u8]>::len) + fields.len());
    match key.map(std::str::from_utf8) {
        None => v.extend_from_slice(b"{\"key\":null"),
        Some(Ok(s)) => {
            v.extend_from_slice(b"{\"key\":");
            let _ = serde_json::to_writer(&mut v, s);
        }
        Some(Err(_)) => {
            use base64::Engine as _;
            v.extend_from_slice(b"{\"key_base64\":\"");
            v.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(key.unwrap_or_default())
                    .as_bytes(),
            );
            v.push(b'"');
        }
    }
    let mut headers = Vec::new();
    if let Some((start, end)) = window {
        let (mut s, mut e) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (s, e) = (s.format(start), e.format(end));
        v.extend_from_slice(b",\"start\":");
        v.extend_from_slice(s.as_bytes());
        v.extend_from_slice(b",\"end\":");
        v.extend_from_slice(e.as_bytes());
        headers.reserve(2);
        headers.push(("weir-window-start".to_owned(), s.as_bytes().to_vec()));
        headers.push(("weir-window-end".to_owned(), e.as_bytes().to_vec()));
    }
    v.extend_from_slice(fields);
    v.push(b'}');
    NewRecord {
        key: key.map(<[u8]>::to_vec),
        value: Some(v),
        headers,
        timestamp: Some(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_hold_the_time_and_tumbling_ones_are_one() {
        assert_eq!(hopping_starts(65, 60, 60).collect::<Vec<_>>(), [60]);
        assert_eq!(hopping_starts(-1, 60, 60).collect::<Vec<_>>(), [-60]);
        assert_eq!(hopping_starts(65, 60, 20).collect::<Vec<_>>(), [60, 40, 20]);
        assert_eq!(hopping_starts(60, 60, 20).collect::<Vec<_>>(), [60, 40, 20]);
        assert_eq!(hopping_starts(59, 60, 20).collect::<Vec<_>>(), [40, 20, 0]);
    }

    #[test]
    fn event_times_out_of_range_are_refused_even_at_the_extremes() {
        let view = |headers: Vec<(&'static str, &'static [u8])>| RecordView {
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers,
        };
        let header = TimeSource::Header { header: "t".into() };
        for bad in [
            &b"-9223372036854775808"[..],
            b"9223372036854775807",
            b"1125899906842625",
        ] {
            let e = event_time(&header, &view(vec![("t", bad)]), None).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        assert_eq!(event_time(&header, &view(vec![("t", b" 42 ")]), None), Ok(42));
        let path = TimeSource::Path { path: "/ts".into() };
        for bad in ["-1e19", "1e300", "1.5", "\"12\""] {
            let doc: Value = serde_json::from_str(&format!("{{\"ts\": {bad}}}")).unwrap();
            assert!(event_time(&path, &view(Vec::new()), Some(&doc)).is_err(), "{bad}");
        }
    }

    #[test]
    fn window_keys_order_by_key_then_start_and_round_trip() {
        let mut keys = [
            window_key(Some(b"b"), -5),
            window_key(Some(b"a"), 10),
            window_key(None, 0),
            window_key(Some(b"a"), -10),
            window_key(Some(b"ab"), -20),
        ];
        keys.sort();
        let back: Vec<_> = keys.iter().map(|k| split_window_key(k).unwrap()).collect();
        assert_eq!(
            back,
            [
                (None, 0),
                (Some(&b"a"[..]), -10),
                (Some(&b"a"[..]), 10),
                (Some(&b"b"[..]), -5),
                (Some(&b"ab"[..]), -20)
            ]
        );
        let r = record_key(Some(b"k"), -3, 7);
        assert_eq!(record_time(&r), Some(-3));
        assert!(r.starts_with(&group_prefix(Some(b"k"))));
    }
}
