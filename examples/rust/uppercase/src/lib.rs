//! Uppercases every value (ASCII letters), keeping key and headers.

use weir_sdk::{Config, Emitter, Error, Output, Processor, Record};

pub struct Uppercase;

impl Processor for Uppercase {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Uppercase)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        let upper = record.value.to_ascii_uppercase();
        out.send(Output::new(&upper).key_opt(record.key).headers(record.headers));
        Ok(())
    }
}

weir_sdk::export_processor!(Uppercase);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run};

    #[test]
    fn uppercases_values_and_keeps_keys_and_headers() {
        let out = run::<Uppercase>(&[], &[TestRecord::value("hello, Weir").key("k").header("h", "v")]).unwrap();
        assert_eq!(out[0].value_str(), "HELLO, WEIR");
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].headers, vec![("h".to_owned(), b"v".to_vec())]);
    }
}
