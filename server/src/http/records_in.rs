//! Produce bodies into records, one record at a time: a `{"records":[...]}` JSON object is
//! walked element by element (each element a borrowed slice of the body until it becomes a
//! record), NDJSON line by line, so memory stays near the size of the records themselves, and
//! a body with more than `records_per_request_max` records stops at the first one too many.
//!
//! Strict: trailing bytes after the JSON object or after a line's object, two objects on one
//! line, unknown fields and text that is not valid Unicode are all refused with the record (and
//! line) they are in.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::ApiError;
use crate::log::NewRecord;

/// One record as a producer sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    key_b64: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value_b64: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "bounded_headers")]
    headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "bounded_headers")]
    headers_b64: BTreeMap<String, String>,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// A record as the API documents it: what [`RecordIn`] parses.
#[derive(utoipa::ToSchema)]
#[schema(as = Record)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct RecordDoc {
    /// The key as text (or give `key_b64`). Records with a key go to the partition its hash
    /// picks.
    key: Option<String>,
    /// The key as base64 bytes.
    key_b64: Option<String>,
    /// The value: a JSON string is stored as its text, any other JSON value as its JSON text;
    /// `null` is a tombstone (no value: compaction deletes the key). (Or give `value_b64`.)
    value: Option<serde_json::Value>,
    /// The value as base64 bytes.
    value_b64: Option<String>,
    /// Header name to text value.
    headers: Option<BTreeMap<String, String>>,
    /// Header name to base64 bytes.
    headers_b64: Option<BTreeMap<String, String>>,
    /// A partition to pin the record to.
    partition: Option<u32>,
    /// Milliseconds since the Unix epoch; default: the time of append.
    timestamp: Option<i64>,
}

/// The JSON body of a produce.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    records: Vec<RecordDoc>,
}

/// Most headers one record may carry (each of `headers` and `headers_b64`): each costs far
/// more memory parsed than its few bytes of JSON.
pub const HEADERS_PER_RECORD_MAX: usize = 1024;
/// Furthest ahead of the broker's clock a record's timestamp may be. Time-based retention keeps
/// a segment until its newest record expires: one record stamped in microseconds by mistake
/// (or on purpose) would keep its partition forever. Kafka 3.6 bounds it the same way.
pub const TIMESTAMP_AHEAD_MS_MAX: i64 = 3600 * 1000;

/// A header map of at most [`HEADERS_PER_RECORD_MAX`] entries, refused as soon as it has more.
fn bounded_headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of header names to strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.len() >= HEADERS_PER_RECORD_MAX {
                    return Err(de::Error::custom(format!(
                        "a record has at most {HEADERS_PER_RECORD_MAX} headers"
                    )));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Bounded)
}

/// `Some` even for JSON `null`: `"value": null` is a tombstone (no value), unlike a missing value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A record to append and the partition it asks for, if any.
#[derive(Debug)]
pub struct Parsed {
    pub partition: Option<u32>,
    pub record: NewRecord,
}

const SHAPE: &str = "a record is {\"key\":..., \"value\":..., \"headers\":{...}, \"partition\":N, \"timestamp\":MS}";

/// Parses `{"records":[...]}`.
pub fn parse_json(body: &[u8], max: usize) -> Result<Vec<Parsed>, ApiError> {
    // One pass over a good body; a bad one is read again, element by element, to say which
    // record is wrong and where.
    match parse_json_with(body, max, true) {
        Ok(out) => Ok(out),
        Err(_) => parse_json_with(body, max, false),
    }
}

fn parse_json_with(body: &[u8], max: usize, direct: bool) -> Result<Vec<Parsed>, ApiError> {
    let mut out = Vec::new();
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed {
        out: &mut out,
        max,
        failure: &mut failure,
        direct,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (parsed, failure) {
        (Ok(()), _) => Ok(out),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(ApiError::InvalidRequest(format!(
            "the body is not one JSON object {{\"records\":[...]}}: {e}; for one record per line use Content-Type application/x-ndjson"
        ))),
    }
}

/// Parses one record per line (blank lines are skipped).
pub fn parse_ndjson(body: &[u8], max: usize) -> Result<Vec<Parsed>, ApiError> {
    let mut out = Vec::new();
    let mut headers = 0;
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = out.len();
        if index >= max {
            return Err(ApiError::TooManyRecords { limit: max });
        }
        let at_line = |reason: String| ApiError::InvalidRecord {
            index,
            reason: format!("line {}: {reason}", n + 1),
        };
        let parsed = parse_record(line).map_err(at_line)?;
        headers += parsed.record.headers.len();
        if headers > max {
            return Err(ApiError::TooManyRecords { limit: max });
        }
        out.push(parsed);
    }
    Ok(out)
}

/// Parses one record object, with nothing after it, into what the log stores. The error says
/// what is wrong (`weir processor test` reads its input with this too).
pub fn parse_record(bytes: &[u8]) -> Result<Parsed, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // The fast path, for good records: no path tracking.
    let rec = match RecordIn::deserialize(&mut de) {
        Ok(rec) => rec,
        Err(_) => {
            // Parse again to say where the problem is.
            let mut de = serde_json::Deserializer::from_slice(bytes);
            return Err(match serde_path_to_error::deserialize::<_, RecordIn<'_>>(&mut de) {
                Err(e) => format!("{e}; {SHAPE}"),
                Ok(_) => format!("the record is malformed; {SHAPE}"),
            });
        }
    };
    de.end()
        .map_err(|e| format!("more follows the record object ({e}); send one record object per line"))?;
    convert(rec)
}

struct BodySeed<'o> {
    out: &'o mut Vec<Parsed>,
    max: usize,
    failure: &'o mut Option<ApiError>,
    /// Records straight from the body (fast), or each element as its own text (to name the
    /// field that is wrong).
    direct: bool,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"records\":[...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != "records" || seen {
                return Err(de::Error::custom(format!(
                    "unexpected field `{key}`; the body has one field, `records`"
                )));
            }
            seen = true;
            let mut headers = 0;
            map.next_value_seed(RecordsSeed {
                out: &mut *self.out,
                max: self.max,
                failure: &mut *self.failure,
                headers: &mut headers,
                direct: self.direct,
            })?;
        }
        if !seen {
            return Err(de::Error::missing_field("records"));
        }
        Ok(())
    }
}

struct RecordsSeed<'o> {
    out: &'o mut Vec<Parsed>,
    max: usize,
    failure: &'o mut Option<ApiError>,
    /// Headers of the records so far: a request has at most `max` of them too.
    headers: &'o mut usize,
    direct: bool,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let index = self.out.len();
            let parsed = if self.direct {
                let Some(rec) = seq.next_element::<RecordIn<'de>>()? else {
                    return Ok(());
                };
                convert(rec)
            } else {
                let Some(raw) = seq.next_element::<&'de RawValue>()? else {
                    return Ok(());
                };
                parse_record(raw.get().as_bytes())
            };
            if index >= self.max {
                *self.failure = Some(ApiError::TooManyRecords { limit: self.max });
                return Err(de::Error::custom("too many records"));
            }
            match parsed {
                Ok(p) if *self.headers + p.record.headers.len() > self.max => {
                    *self.failure = Some(ApiError::TooManyRecords { limit: self.max });
                    return Err(de::Error::custom("too many headers"));
                }
                Ok(p) => {
                    *self.headers += p.record.headers.len();
                    self.out.push(p);
                }
                Err(reason) => {
                    *self.failure = Some(ApiError::InvalidRecord { index, reason });
                    return Err(de::Error::custom("invalid record"));
                }
            }
        }
    }
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text)
        .map_err(|e| format!("{field} is not valid base64: {e}"))
}

/// Turns a parsed record into what the log stores, checking everything the parser cannot.
fn convert(r: RecordIn<'_>) -> Result<Parsed, String> {
    let key = match (r.key, r.key_b64) {
        (Some(_), Some(_)) => return Err("give key or key_b64, not both".into()),
        (Some(k), None) => Some(k.into_owned().into_bytes()),
        (None, Some(k)) => Some(decode_b64("key_b64", &k)?),
        (None, None) => None,
    };
    let value = match (r.value, r.value_b64) {
        (Some(_), Some(_)) => return Err("give value or value_b64, not both".into()),
        (Some(raw), None) if raw.get() == "null" => None,
        (Some(raw), None) => Some(json_value_bytes(raw)?),
        (None, Some(v)) => Some(decode_b64("value_b64", &v)?),
        (None, None) => return Err("the record has no value; give value (JSON) or value_b64 (bytes)".into()),
    };
    if let Some(ts) = r.timestamp {
        if ts < 0 {
            return Err(format!(
                "timestamp must be milliseconds since the Unix epoch (>= 0), got {ts}"
            ));
        }
        let ahead = ts.saturating_sub(crate::topic::now_ms());
        if ahead > TIMESTAMP_AHEAD_MS_MAX {
            return Err(format!(
                "timestamp {ts} is {ahead} ms ahead of the broker's clock; at most one hour ahead is accepted (timestamps are milliseconds since the Unix epoch, not microseconds)"
            ));
        }
    }
    let mut headers: Vec<(String, Vec<u8>)> = r.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    for (name, v) in r.headers_b64 {
        let bytes = decode_b64(&format!("headers_b64.{name}"), &v)?;
        headers.push((name, bytes));
    }
    Ok(Parsed {
        partition: r.partition,
        record: NewRecord {
            key,
            value,
            headers,
            timestamp: r.timestamp,
        },
    })
}

/// A JSON string is stored as its text; any other JSON value as its JSON text, as sent (key
/// order, number spelling) but without the whitespace between tokens.
fn json_value_bytes(raw: &RawValue) -> Result<Vec<u8>, String> {
    let text = raw.get();
    if text.starts_with('"') {
        return serde_json::from_str::<Cow<'_, str>>(text)
            .map(|s| s.into_owned().into_bytes())
            .map_err(|e| format!("value is not valid Unicode text ({e}); send bytes as value_b64"));
    }
    Ok(compact(text))
}

/// `text` (valid JSON) without whitespace outside strings.
fn compact(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> Result<Vec<u8>, String> {
        json_value_bytes(serde_json::from_str::<&RawValue>(s).unwrap())
    }

    #[test]
    fn json_values_store_strings_as_text_and_the_rest_as_sent_without_whitespace() {
        assert_eq!(value(r#""héllo \"x\"""#).unwrap(), "héllo \"x\"".as_bytes());
        assert_eq!(
            value(r#"{ "b" : [1, 2], "a": 1.50 }"#).unwrap(),
            br#"{"b":[1,2],"a":1.50}"#
        );
        assert_eq!(value("42").unwrap(), b"42");
        assert_eq!(value("\"null\"").unwrap(), b"null");
        assert_eq!(value(r#"{"s":"a b\" c"}"#).unwrap(), br#"{"s":"a b\" c"}"#);
    }

    #[test]
    fn a_lone_surrogate_is_refused_not_stored_as_escaped_text() {
        let e = value(r#""\ud800""#).unwrap_err();
        assert!(e.contains("value_b64"), "{e}");
    }

    #[test]
    fn two_objects_on_a_line_and_trailing_junk_name_the_line() {
        let e = parse_ndjson(b"{\"value\":\"ok\"}\n\n{\"value\":\"a\"}{\"value\":\"b\"}\n", 10).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidRecord { index: 1, reason } if reason.starts_with("line 3:")),
            "{e}"
        );
        let e = parse_ndjson(b"{\"value\":\"c\"} trailing junk ]]]", 10).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse_json(br#"{"records":[{"value":"a"}]} junk"#, 10).unwrap_err();
        assert!(matches!(e, ApiError::InvalidRequest(_)), "{e}");
    }

    #[test]
    fn records_past_the_limit_are_refused_as_too_many() {
        let e = parse_json(br#"{"records":[{"value":1},{"value":2},{"value":3}]}"#, 2).unwrap_err();
        assert!(matches!(e, ApiError::TooManyRecords { limit: 2 }));
        let e = parse_ndjson(b"{\"value\":1}\n{\"value\":2}\n{\"value\":3}\n", 2).unwrap_err();
        assert!(matches!(e, ApiError::TooManyRecords { limit: 2 }));
        assert_eq!(
            parse_json(br#"{"records":[{"value":1},{"value":2}]}"#, 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_bad_record_is_named_by_its_index_and_field() {
        let e = parse_json(br#"{"records":[{"value":1},{"value":2,"partition":"x"}]}"#, 10).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidRecord { index: 1, reason } if reason.contains("partition")),
            "{e}"
        );
    }
}

#[cfg(test)]
mod properties {
    //! The produce parsers under arbitrary bodies: they answer (records or an error) and never
    //! panic; records written as JSON lines read back as written.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic_the_parsers(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_ndjson(&body, 1000);
            let _ = parse_json(&body, 1000);
        }

        #[test]
        fn json_like_bodies_never_panic_the_parsers(body in "[\\[\\]{}\":,a-z0-9 \\n\\\\]{0,200}") {
            let _ = parse_ndjson(body.as_bytes(), 1000);
            let _ = parse_json(body.as_bytes(), 1000);
        }

        #[test]
        fn records_read_back_as_written(
            recs in proptest::collection::vec(
                (proptest::option::of("[^\\u{0}]{0,20}"), "[^\\u{0}]{0,60}", proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,10}", 0..4), proptest::option::of(0u32..4)),
                1..20,
            )
        ) {
            let mut ndjson = String::new();
            let mut objects = Vec::new();
            for (key, value, headers, partition) in &recs {
                let mut o = serde_json::json!({"value": value, "headers": headers});
                if let Some(k) = key {
                    o["key"] = serde_json::json!(k);
                }
                if let Some(p) = partition {
                    o["partition"] = serde_json::json!(p);
                }
                ndjson.push_str(&o.to_string());
                ndjson.push('\n');
                objects.push(o);
            }
            let body = serde_json::json!({ "records": objects }).to_string();
            for parsed in [parse_ndjson(ndjson.as_bytes(), 1000).unwrap(), parse_json(body.as_bytes(), 1000).unwrap()] {
                prop_assert_eq!(parsed.len(), recs.len());
                for (p, (key, value, headers, partition)) in parsed.iter().zip(&recs) {
                    prop_assert_eq!(p.partition, *partition);
                    prop_assert_eq!(p.record.key.as_deref(), key.as_ref().map(|k| k.as_bytes()));
                    prop_assert_eq!(p.record.value_bytes(), value.as_bytes());
                    let hs: BTreeMap<String, String> = p.record.headers.iter().map(|(n, v)| (n.clone(), String::from_utf8(v.clone()).unwrap())).collect();
                    prop_assert_eq!(&hs, headers);
                }
            }
        }
    }
}
