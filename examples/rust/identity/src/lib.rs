//! Passes every record through unchanged: the smallest processor, and the one the guest-call
//! benchmark measures (`weir bench guest --wasm ...`).

use weir_sdk::{Config, Emitter, Error, Processor, Record};

pub struct Identity;

impl Processor for Identity {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Identity)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        out.forward(record);
        Ok(())
    }
}

weir_sdk::export_processor!(Identity);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run};

    #[test]
    fn passes_records_through_unchanged() {
        let input = [
            TestRecord::value("a").key("k").header("h", "1"),
            TestRecord::value([0u8, 255]),
        ];
        let out = run::<Identity>(&[], &input).unwrap();
        assert_eq!(out[0].value, b"a");
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].headers, vec![("h".to_owned(), b"1".to_vec())]);
        assert_eq!(out[1].value, [0u8, 255]);
    }
}
