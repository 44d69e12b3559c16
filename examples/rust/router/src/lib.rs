//! Routes each record to one of several outputs by a field of its JSON value.
//!
//! Config: `field` (the JSON field), `routes` (`value:output-index` pairs separated by commas,
//! for example `eu:0,us:1`) and optionally `default` (the output for any other value; without it
//! such a record is an error).

use std::collections::HashMap;

use weir_sdk::{Config, Emitter, Error, Output, Processor, Record};

pub struct Router {
    field: String,
    routes: HashMap<String, u32>,
    default: Option<u32>,
}

impl Processor for Router {
    fn init(config: &Config) -> Result<Self, String> {
        let mut routes = HashMap::new();
        for pair in config.require("routes")?.split(',').filter(|p| !p.trim().is_empty()) {
            let (value, index) = pair
                .split_once(':')
                .ok_or_else(|| format!("route '{pair}' is not value:output-index"))?;
            let index = index
                .trim()
                .parse()
                .map_err(|_| format!("route '{pair}': '{index}' is not an output index"))?;
            routes.insert(value.trim().to_owned(), index);
        }
        let default = match config.get("default") {
            Some(_) => Some(config.parse("default")?),
            None => None,
        };
        Ok(Router {
            field: config.require("field")?.to_owned(),
            routes,
            default,
        })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        let value: serde_json::Value = serde_json::from_slice(record.value)?;
        let key = match value.get(&self.field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Err(Error::new(format!("field '{}' is missing", self.field))),
        };
        let Some(output) = self.routes.get(&key).copied().or(self.default) else {
            return Err(Error::new(format!("no route for {} = {key}", self.field)));
        };
        out.send(
            Output::new(record.value)
                .key_opt(record.key)
                .headers(record.headers)
                .to(output),
        );
        Ok(())
    }
}

weir_sdk::export_processor!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run, run_batch};

    #[test]
    fn routes_by_field_with_a_default() {
        let config = [("field", "region"), ("routes", "eu:0, us:1"), ("default", "2")];
        let input = [r#"{"region":"us"}"#, r#"{"region":"eu"}"#, r#"{"region":"apac"}"#].map(TestRecord::value);
        let out = run::<Router>(&config, &input).unwrap();
        assert_eq!(
            out.iter().map(|o| o.output).collect::<Vec<_>>(),
            [Some(1), Some(0), Some(2)]
        );
    }

    #[test]
    fn unrouted_records_fail_without_a_default() {
        let outcome = run_batch::<Router>(
            &[("field", "region"), ("routes", "eu:0")],
            &[TestRecord::value(r#"{"region":"us"}"#)],
        )
        .unwrap();
        assert!(outcome.failed[0].1.contains("no route"));
    }

    #[test]
    fn malformed_routes_are_rejected() {
        assert!(
            run::<Router>(&[("field", "r"), ("routes", "eu=0")], &[])
                .unwrap_err()
                .contains("eu=0")
        );
    }
}
