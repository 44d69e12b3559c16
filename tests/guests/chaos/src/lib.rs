//! Misbehaves on command, by record value: `loop` spins forever, `alloc` allocates without
//! bound, `panic` panics, `fail` returns an error, `log:TEXT` prints TEXT to stdout and to the
//! host log. With a store `counts` deployed: `count:KEY` adds one to KEY and passes through,
//! `count-fail:KEY` adds one then fails, `count-panic:KEY` adds one then panics. With a store
//! `kv`: `set:VALUE` sets the record's key to VALUE and passes through (the state benchmark's
//! load). Anything else passes through.

use weir_sdk::{Config, Emitter, Error, Processor, Record};

pub struct Chaos;

impl Processor for Chaos {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Chaos)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        match record.value {
            b"loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            b"panic" => panic!("chaos guest panicked on purpose"),
            b"fail" => Err(Error::new("refused: the record said fail")),
            v if v.starts_with(b"set:") => {
                let kv = weir_sdk::state::Store::open("kv")?;
                kv.set(record.key.unwrap_or_default(), &v[4..])?;
                out.forward(record);
                Ok(())
            }
            v if v.starts_with(b"count") => {
                let text = String::from_utf8_lossy(v).into_owned();
                let (how, key) = text.split_once(':').unwrap_or((&text, ""));
                let counts = weir_sdk::state::Store::open("counts")?;
                counts.increment(key.as_bytes(), 1)?;
                match how {
                    "count-fail" => Err(Error::new("refused after writing state")),
                    "count-panic" => panic!("chaos guest panicked after writing state"),
                    _ => {
                        out.forward(record);
                        Ok(())
                    }
                }
            }
            v if v.starts_with(b"log:") => {
                let text = String::from_utf8_lossy(&v[4..]);
                println!("stdout says {text}");
                weir_sdk::info!("sdk log says {text}");
                out.forward(record);
                Ok(())
            }
            _ => {
                out.forward(record);
                Ok(())
            }
        }
    }
}

weir_sdk::export_processor!(Chaos);
