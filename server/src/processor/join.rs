//! The declarative stream-table join (`"join"` in a deployment): each JSON record is enriched
//! with the row of a table (a topic read as the latest value per key) under a field, with no
//! module. The table is read from the partition the record's task reads (co-partitioned).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{NewRecord, RecordView};
use crate::table::Table;

/// What happens to a record whose key the table does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Written with the field set to null (a left join; the default).
    #[default]
    Null,
    /// Not written (an inner join).
    Drop,
    /// To the dead-letter topic, as a record error.
    DeadLetter,
}

/// `"join"` of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// The table's topic: same partition count as the input, keyed the same way.
    pub table: String,
    /// JSON pointer to the value's field holding the table key (a string, or a number as its
    /// decimal text); none: the record's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The field the row goes in (default: the table's name).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default)]
    pub missing: Missing,
}

impl JoinSpec {
    pub fn validate(&self) -> Result<(), String> {
        crate::topic::spec::validate_name(&self.table).map_err(|e| format!("join.table: {e}"))?;
        if let Some(k) = &self.key
            && !k.starts_with('/')
        {
            return Err(format!(
                "join.key '{k}' is not a JSON pointer; write it as RFC 6901 does (\"/{k}\"), or leave it out to join on the record key"
            ));
        }
        if self.field.as_deref() == Some("") {
            return Err("join.as must name a field".into());
        }
        Ok(())
    }

    fn field(&self) -> &str {
        self.field.as_deref().unwrap_or(&self.table)
    }
}

/// What the join made of one record.
pub enum Joined {
    Out(NewRecord),
    Dropped,
    Failed(String),
}

/// Enriches `v` with its row of `table`: the row in the table partition its key goes to (the
/// record's own partition when both topics are keyed by the join key).
pub fn join(spec: &JoinSpec, table: &Table, v: &RecordView<'_>) -> Joined {
    let mut doc: Value = match serde_json::from_slice(v.value_bytes()) {
        Ok(d @ Value::Object(_)) => d,
        Ok(_) => return Joined::Failed("join: the value is not a JSON object".into()),
        Err(e) => return Joined::Failed(format!("join: the value is not JSON ({e})")),
    };
    let key: Vec<u8> = match &spec.key {
        None => match v.key {
            Some(k) => k.to_vec(),
            None => return Joined::Failed("join: the record has no key to look up".into()),
        },
        Some(path) => match doc.pointer(path) {
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(Value::Number(n)) => n.to_string().into_bytes(),
            // No key to look up: no row.
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Joined::Failed(format!(
                    "join: the value at {path} is {other}, not a string or number to look up"
                ));
            }
        },
    };
    let row = match (!key.is_empty()).then(|| table.get(&key)).flatten() {
        Some((_, row)) => {
            serde_json::from_slice(&row.value).unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&row.value)))
        }
        None => match spec.missing {
            Missing::Null => Value::Null,
            Missing::Drop => return Joined::Dropped,
            Missing::DeadLetter if key.is_empty() => {
                return Joined::Failed(format!(
                    "join: the value has nothing at {} to look up in table '{}'",
                    spec.key.as_deref().unwrap_or_default(),
                    spec.table
                ));
            }
            Missing::DeadLetter => {
                return Joined::Failed(format!(
                    "join: table '{}' has no row for key '{}'",
                    spec.table,
                    String::from_utf8_lossy(&key)
                ));
            }
        },
    };
    if let Value::Object(m) = &mut doc {
        m.insert(spec.field().to_owned(), row);
    }
    Joined::Out(NewRecord {
        key: v.key.map(<[u8]>::to_vec),
        value: Some(serde_json::to_vec(&doc).unwrap_or_default()),
        headers: v.headers.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect(),
        timestamp: Some(v.timestamp),
    })
}
