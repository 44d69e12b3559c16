//! What a deployment declares about windows and built-in aggregates (`"window"` and
//! `"aggregate"` in `PUT /v1/processors/{name}`), and the checks that name the field to fix.

use serde::{Deserialize, Serialize};

/// Longest window, gap, grace, out-of-orderness or retention: a year.
pub const DURATION_MS_MAX: i64 = 366 * 24 * 3600 * 1000;
/// Most windows one record may fall in (hopping `size_ms / advance_ms`): each is a state write.
pub const WINDOWS_PER_RECORD_MAX: i64 = 100;

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowType {
    /// Fixed, back to back: `[k*size, (k+1)*size)`.
    Tumbling,
    /// Fixed size, starting every `advance_ms`: a record falls in `size/advance` of them.
    Hopping,
    /// Kafka Streams' sliding windows: every distinct set of a key's records no more than
    /// `size_ms` apart, `(t - size, t]` ending at each record and `(t, t + size]` after it.
    Sliding,
    /// A key's records with gaps shorter than `gap_ms` between them.
    Session,
}

/// Where a record's event time comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TimeSource {
    /// `"timestamp"`: the record's timestamp (the default).
    Timestamp(TimestampWord),
    /// `{"header": "event-time"}`: a header holding milliseconds since the epoch as decimal text.
    Header { header: String },
    /// `{"path": "/ts"}`: a JSON pointer (RFC 6901) into the value, to a number of milliseconds.
    Path { path: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimestampWord {
    Timestamp,
}

impl Default for TimeSource {
    fn default() -> Self {
        Self::Timestamp(TimestampWord::Timestamp)
    }
}

/// What happens to a record that comes after its windows closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Late {
    /// `"drop"` (counted as `late` in the status; the default) or `"dead_letter"`.
    Word(LateWord),
    /// `{"topic": "late-orders"}`: copied to that topic as it was read (created if missing).
    Topic { topic: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LateWord {
    Drop,
    DeadLetter,
}

impl Default for Late {
    fn default() -> Self {
        Self::Word(LateWord::Drop)
    }
}

/// When a window's result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// After each batch, the new result of every window it changed (the default, as Kafka
    /// Streams' record cache emits).
    #[default]
    Update,
    /// Once per window, when it closes (the watermark passed its end plus `grace_ms`).
    Final,
}

/// `"window"` of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(rename = "type")]
    pub kind: WindowType,
    /// Window length (tumbling, hopping, sliding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_ms: Option<i64>,
    /// How far apart hopping windows start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advance_ms: Option<i64>,
    /// Session windows: the quiet time that ends a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<i64>,
    /// Required: how long after its end a window still takes records (by the watermark).
    pub grace_ms: Option<i64>,
    #[serde(default)]
    pub time: TimeSource,
    /// The watermark is the largest event time seen minus this.
    #[serde(default)]
    pub out_of_order_ms: i64,
    /// After this long without input (wall clock), the watermark moves on with the wall
    /// clock, so quiet partitions still close their windows. None: only records move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<i64>,
    #[serde(default)]
    pub late: Late,
    #[serde(default)]
    pub emit: Emit,
    /// How long after its end a window's state is kept; at least `grace_ms` (a session's
    /// `gap_ms + grace_ms`), the time it takes records after its end, which is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
}

/// The window kinds with their lengths, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Hopping { size: i64, advance: i64 },
    Sliding { size: i64 },
    Session { gap: i64 },
}

impl WindowSpec {
    /// The checked shape; the error names the field.
    pub fn shape(&self) -> Result<Shape, String> {
        let need = |v: Option<i64>, field: &str| -> Result<i64, String> {
            let v = v.ok_or_else(|| format!("window.{field} is required for {} windows", self.kind_name()))?;
            if !(1..=DURATION_MS_MAX).contains(&v) {
                return Err(format!("window.{field} must be 1 to {DURATION_MS_MAX} (ms), got {v}"));
            }
            Ok(v)
        };
        let refuse = |v: Option<i64>, field: &str| -> Result<(), String> {
            match v {
                Some(_) => Err(format!("window.{field} does not apply to {} windows", self.kind_name())),
                None => Ok(()),
            }
        };
        Ok(match self.kind {
            WindowType::Tumbling => {
                refuse(self.advance_ms, "advance_ms")?;
                refuse(self.gap_ms, "gap_ms")?;
                let size = need(self.size_ms, "size_ms")?;
                Shape::Hopping { size, advance: size }
            }
            WindowType::Hopping => {
                refuse(self.gap_ms, "gap_ms")?;
                let size = need(self.size_ms, "size_ms")?;
                let advance = need(self.advance_ms, "advance_ms")?;
                if advance > size {
                    return Err(format!(
                        "window.advance_ms ({advance}) is over size_ms ({size}): records between windows would be lost"
                    ));
                }
                if (size + advance - 1) / advance > WINDOWS_PER_RECORD_MAX {
                    return Err(format!(
                        "window.size_ms / advance_ms is {}: a record would fall in more than {WINDOWS_PER_RECORD_MAX} windows",
                        (size + advance - 1) / advance
                    ));
                }
                Shape::Hopping { size, advance }
            }
            WindowType::Sliding => {
                refuse(self.advance_ms, "advance_ms")?;
                refuse(self.gap_ms, "gap_ms")?;
                Shape::Sliding {
                    size: need(self.size_ms, "size_ms")?,
                }
            }
            WindowType::Session => {
                refuse(self.advance_ms, "advance_ms")?;
                refuse(self.size_ms, "size_ms")?;
                Shape::Session {
                    gap: need(self.gap_ms, "gap_ms")?,
                }
            }
        })
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            WindowType::Tumbling => "tumbling",
            WindowType::Hopping => "hopping",
            WindowType::Sliding => "sliding",
            WindowType::Session => "session",
        }
    }

    /// `grace_ms`, checked (it has no default).
    pub fn grace(&self) -> Result<i64, String> {
        let g = self.grace_ms.ok_or_else(|| {
            "window.grace_ms is required: how long after its end (by the watermark) a window still takes out-of-order records, in ms (0 closes it at its end)"
                .to_owned()
        })?;
        if !(0..=DURATION_MS_MAX).contains(&g) {
            return Err(format!("window.grace_ms must be 0 to {DURATION_MS_MAX} (ms), got {g}"));
        }
        Ok(g)
    }

    /// How long after its end a window is kept.
    pub fn retention(&self) -> Result<i64, String> {
        let grace = self.grace()?;
        let least = match self.shape()? {
            Shape::Hopping { .. } | Shape::Sliding { .. } => grace,
            Shape::Session { gap } => gap + grace,
        };
        match self.retention_ms {
            None => Ok(least),
            Some(r) if (least..=DURATION_MS_MAX).contains(&r) => Ok(r),
            Some(r) => Err(format!(
                "window.retention_ms ({r}) must be at least {least} (the time a window takes records after its end) and at most {DURATION_MS_MAX}"
            )),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.shape()?;
        self.retention()?;
        if !(0..=DURATION_MS_MAX).contains(&self.out_of_order_ms) {
            return Err(format!("window.out_of_order_ms must be 0 to {DURATION_MS_MAX} (ms)"));
        }
        if let Some(i) = self.idle_ms
            && !(1..=DURATION_MS_MAX).contains(&i)
        {
            return Err(format!("window.idle_ms must be 1 to {DURATION_MS_MAX} (ms), got {i}"));
        }
        match &self.time {
            TimeSource::Timestamp(_) => {}
            TimeSource::Header { header } if header.is_empty() => {
                return Err("window.time.header must name a header".into());
            }
            TimeSource::Header { .. } => {}
            TimeSource::Path { path } => check_pointer(path).map_err(|e| format!("window.time.path: {e}"))?,
        }
        if let Late::Topic { topic } = &self.late {
            crate::topic::spec::validate_name(topic).map_err(|e| format!("window.late.topic: {e}"))?;
        }
        Ok(())
    }
}

/// A built-in aggregate's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// Distinct values at `path`: exact up to 128 of them, then a HyperLogLog estimate (about
    /// 3% standard error).
    CountDistinct,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Avg => "avg",
            Self::CountDistinct => "count_distinct",
        }
    }
}

/// `"aggregate"` of a deployment: a function over a JSON path, per record key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    pub op: Op,
    /// JSON pointer (RFC 6901) to the number (or, for count_distinct, any value) aggregated;
    /// `count` takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl AggregateSpec {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.op, &self.path) {
            (Op::Count, Some(_)) => Err("aggregate.path: count counts records and takes no path".into()),
            (Op::Count, None) => Ok(()),
            (op, None) => Err(format!(
                "aggregate.path is required for {}: a JSON pointer such as \"/amount\"",
                op.name()
            )),
            (_, Some(p)) => check_pointer(p).map_err(|e| format!("aggregate.path: {e}")),
        }
    }
}

/// A JSON pointer as RFC 6901 writes it: empty (the whole value) or starting with `/`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "'{p}' is not a JSON pointer; write it as RFC 6901 does, starting with '/' (\"/{p}\")"
        ));
    }
    if p.len() > 1024 {
        return Err("a JSON pointer has at most 1024 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<WindowSpec, String> {
        let w: WindowSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        w.validate().map(|()| w)
    }

    #[test]
    fn grace_is_required_and_fields_are_checked_by_kind() {
        let e = spec(serde_json::json!({"type": "tumbling", "size_ms": 60000})).unwrap_err();
        assert!(e.contains("grace_ms is required"), "{e}");
        let e =
            spec(serde_json::json!({"type": "tumbling", "size_ms": 60000, "gap_ms": 5, "grace_ms": 0})).unwrap_err();
        assert!(e.contains("gap_ms does not apply"), "{e}");
        let e = spec(serde_json::json!({"type": "hopping", "size_ms": 60000, "advance_ms": 10, "grace_ms": 0}))
            .unwrap_err();
        assert!(e.contains("more than 100 windows"), "{e}");
        let e = spec(serde_json::json!({"type": "session", "grace_ms": 0})).unwrap_err();
        assert!(e.contains("gap_ms is required"), "{e}");
        let e =
            spec(serde_json::json!({"type": "sliding", "size_ms": 10, "grace_ms": 5, "retention_ms": 2})).unwrap_err();
        assert!(e.contains("at least 5"), "{e}");
        let e = spec(serde_json::json!({"type": "tumbling", "size_ms": 10, "grace_ms": 0, "time": {"path": "ts"}}))
            .unwrap_err();
        assert!(e.contains("\"/ts\""), "{e}");
        let w = spec(
            serde_json::json!({"type": "session", "gap_ms": 30, "grace_ms": 5, "late": {"topic": "late"},
            "time": {"header": "t"}, "emit": "final"}),
        )
        .unwrap();
        assert_eq!(w.shape().unwrap(), Shape::Session { gap: 30 });
        assert_eq!(w.retention().unwrap(), 35);
    }

    #[test]
    fn aggregates_need_a_path_except_count() {
        let a = |j| serde_json::from_value::<AggregateSpec>(j).unwrap().validate();
        assert!(a(serde_json::json!({"op": "count"})).is_ok());
        assert!(a(serde_json::json!({"op": "count", "path": "/x"})).is_err());
        assert!(a(serde_json::json!({"op": "sum"})).unwrap_err().contains("/amount"));
        assert!(a(serde_json::json!({"op": "avg", "path": "/a/b"})).is_ok());
    }
}
