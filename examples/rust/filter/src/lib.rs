//! Keeps records whose JSON value has a numeric field at or above a threshold.
//!
//! Config: `field` (the JSON field to read) and `min` (a number). A value that is not JSON, or
//! lacks the field, or has a non-numeric one, is an error: the broker applies the error policy
//! (for example, dead-letters it).

use weir_sdk::{Config, Emitter, Error, Processor, Record};

pub struct Filter {
    field: String,
    min: f64,
}

impl Processor for Filter {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Filter {
            field: config.require("field")?.to_owned(),
            min: config.parse("min")?,
        })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        let value: serde_json::Value = serde_json::from_slice(record.value)?;
        let Some(n) = value.get(&self.field).and_then(serde_json::Value::as_f64) else {
            return Err(Error::new(format!("field '{}' is missing or not a number", self.field)));
        };
        if n >= self.min {
            out.forward(record);
        }
        Ok(())
    }
}

weir_sdk::export_processor!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run, run_batch};

    const CONFIG: &[(&str, &str)] = &[("field", "amount"), ("min", "100")];

    #[test]
    fn keeps_records_at_or_above_the_minimum() {
        let input = [r#"{"amount":50}"#, r#"{"amount":100}"#, r#"{"amount":250.5,"id":3}"#].map(TestRecord::value);
        let out = run::<Filter>(CONFIG, &input).unwrap();
        let values: Vec<_> = out.iter().map(|o| o.value_str()).collect();
        assert_eq!(values, [r#"{"amount":100}"#, r#"{"amount":250.5,"id":3}"#]);
    }

    #[test]
    fn bad_records_fail_alone() {
        let input = [r#"{"amount":500}"#, "not json", r#"{"other":1}"#].map(TestRecord::value);
        let outcome = run_batch::<Filter>(CONFIG, &input).unwrap();
        assert_eq!(outcome.emitted.len(), 1);
        assert_eq!(outcome.failed.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        assert!(outcome.failed[1].1.contains("'amount'"));
    }

    #[test]
    fn missing_or_bad_config_is_rejected_with_its_name() {
        assert!(run::<Filter>(&[("field", "a")], &[]).unwrap_err().contains("min"));
        assert!(
            run::<Filter>(&[("field", "a"), ("min", "lots")], &[])
                .unwrap_err()
                .contains("lots")
        );
    }
}
