//! Word count with keyed state: for each input record whose value is a word, one output keyed
//! by the word whose value is its count so far, as a JSON number. The counts live in the store
//! `counts` (deploy with `"stores": ["counts"]`); they survive restarts and crashes, and each
//! word is counted exactly once.
//!
//! Produce the words keyed by themselves (`{"key": "apple", "value": "apple"}`), or to a topic
//! of one partition: state is kept per input partition, so a word must always arrive on the
//! same one.

use weir_sdk::state::Store;
use weir_sdk::{Config, Emitter, Error, Output, Processor, Record};

pub struct WordCount {
    counts: Store,
}

impl Processor for WordCount {
    fn init(_config: &Config) -> Result<Self, String> {
        let counts = Store::open("counts").map_err(|e| e.message().to_owned())?;
        Ok(WordCount { counts })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        let word = std::str::from_utf8(record.value).map_err(|_| Error::new("the value is not UTF-8 text"))?;
        if word.is_empty() || word.contains(char::is_whitespace) {
            return Err(Error::new(format!("'{word}' is not one word")));
        }
        let count = self.counts.increment(word.as_bytes(), 1)?;
        let value = count.to_string();
        out.send(Output::new(&value).key(word));
        Ok(())
    }
}

weir_sdk::export_processor!(WordCount);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, reset_state, run, run_batch, stored};

    fn words(ws: &[&str]) -> Vec<TestRecord> {
        ws.iter().map(|w| TestRecord::value(w).key(w)).collect()
    }

    #[test]
    fn counts_each_word_across_batches() {
        reset_state();
        let out = run::<WordCount>(&[], &words(&["apple", "pear", "apple"])).unwrap();
        let values: Vec<(String, String)> = out
            .iter()
            .map(|e| (String::from_utf8(e.key.clone().unwrap()).unwrap(), e.value_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("apple".into(), "1".into()),
                ("pear".into(), "1".into()),
                ("apple".into(), "2".into())
            ]
        );
        let out = run::<WordCount>(&[], &words(&["apple"])).unwrap();
        assert_eq!(
            out[0].value_str(),
            "3",
            "the count lives in the state, not the instance"
        );
        assert_eq!(stored("counts", b"apple").as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_record_that_is_not_a_word_fails_alone() {
        reset_state();
        let o = run_batch::<WordCount>(&[], &words(&["a", "two words", "a"])).unwrap();
        assert_eq!(o.failed.len(), 1);
        assert_eq!(o.failed[0].0, 1);
        assert_eq!(o.emitted.len(), 2);
    }
}
