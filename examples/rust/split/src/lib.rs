//! One sentence in, one record per word out (split on whitespace), keeping the key.

use weir_sdk::{Config, Emitter, Error, Output, Processor, Record};

pub struct Split;

impl Processor for Split {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Split)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        for word in record.value_str()?.split_whitespace() {
            out.send(Output::new(word).key_opt(record.key));
        }
        Ok(())
    }
}

weir_sdk::export_processor!(Split);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run};

    #[test]
    fn one_record_per_word() {
        let out = run::<Split>(
            &[],
            &[
                TestRecord::value("the quick  brown\nfox").key("s1"),
                TestRecord::value(""),
            ],
        )
        .unwrap();
        let words: Vec<_> = out.iter().map(|o| o.value_str()).collect();
        assert_eq!(words, ["the", "quick", "brown", "fox"]);
        assert!(out.iter().all(|o| o.key.as_deref() == Some(&b"s1"[..])));
    }
}
