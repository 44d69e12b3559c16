use super::*;

#[test]
fn input_batches_round_trip_in_place() {
    let mut w = BatchWriter::new("orders", 3, 0);
    w.push(10, 1_700, Some(b"k"), b"v1", [("h", &b"x"[..]), ("bin", &[0xff][..])]);
    w.push(11, -5, None, b"", []);
    let bytes = w.finish();
    let r = BatchReader::new(&bytes).unwrap();
    assert_eq!(r.remaining(), 2);
    let got: Vec<_> = r.map(Result::unwrap).collect();
    assert_eq!(got[0].topic, "orders");
    assert_eq!(got[0].partition, 3);
    assert_eq!(
        (got[0].offset, got[0].timestamp, got[0].key, got[0].value),
        (10, 1_700, Some(&b"k"[..]), &b"v1"[..])
    );
    assert_eq!(got[0].headers.get("bin"), Some(&[0xff][..]));
    assert_eq!(got[0].headers.iter().count(), 2);
    assert_eq!((got[1].key, got[1].value, got[1].headers.len()), (None, &b""[..], 0));
}

#[test]
fn outputs_round_trip_with_their_output_index() {
    let mut w = OutputWriter::default();
    w.push(0, None, None, b"a", []);
    let mark = w.mark();
    w.push(1, None, None, b"dropped", []);
    w.rollback(mark);
    w.fail(1, "bad record");
    w.push(2, Some(2), Some(b"k"), b"b", [("n", &b"1"[..])]);
    let bytes = w.finish();
    let mut r = OutputReader::new(&bytes).unwrap();
    let a = r.next().unwrap().unwrap();
    let b = r.next().unwrap().unwrap();
    assert!(r.next().is_none());
    assert_eq!(r.failures().unwrap(), vec![(1, "bad record")]);
    assert_eq!((a.input, a.output, a.value), (0, None, &b"a"[..]));
    assert_eq!(b.input, 2);
    assert_eq!(
        (b.output, b.key, b.headers.get("n")),
        (Some(2), Some(&b"k"[..]), Some(&b"1"[..]))
    );
}

#[test]
fn truncated_or_lying_buffers_are_errors_not_panics() {
    let mut w = BatchWriter::new("t", 0, 0);
    w.push(1, 2, Some(b"key"), b"value", [("h", &b"v"[..])]);
    let bytes = w.finish();
    for cut in 0..bytes.len() {
        let ok = BatchReader::new(&bytes[..cut]).map(|r| r.collect::<Result<Vec<_>, _>>().is_ok());
        assert!(!matches!(ok, Ok(true)), "cut at {cut} decoded");
    }
    let mut out = OutputWriter::default();
    out.push(0, None, None, b"x", []);
    let mut bytes = out.finish();
    bytes[0] = 5; // claims five records
    let results: Vec<_> = OutputReader::new(&bytes).unwrap().collect();
    assert!(results.last().unwrap().is_err());
}

mod properties {
    //! The packed codec under arbitrary input: decoding never panics, and what is written reads
    //! back the same.

    use proptest::prelude::*;

    use super::super::*;

    type Rec = (u64, i64, Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);

    fn record() -> impl Strategy<Value = Rec> {
        (
            any::<u64>(),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(("[a-z\\-]{0,12}", proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = BatchReader::new(&bytes) {
                for rec in r {
                    let _ = rec;
                }
            }
            if let Ok(mut r) = OutputReader::new(&bytes) {
                for rec in r.by_ref() {
                    let _ = rec;
                }
                let _ = r.failures();
            }
        }

        #[test]
        fn input_batches_read_back_what_was_written(topic in "[a-z.]{1,20}", partition in any::<u32>(), recs in proptest::collection::vec(record(), 0..20)) {
            let mut w = BatchWriter::new(&topic, partition, 0);
            for (offset, ts, key, value, headers) in &recs {
                w.push(*offset, *ts, key.as_deref(), value, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
            }
            let bytes = w.finish();
            let got: Vec<_> = BatchReader::new(&bytes).unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(got.len(), recs.len());
            for (g, (offset, ts, key, value, headers)) in got.iter().zip(&recs) {
                prop_assert_eq!(g.topic, topic.as_str());
                prop_assert_eq!(g.partition, partition);
                prop_assert_eq!((g.offset, g.timestamp), (*offset, *ts));
                prop_assert_eq!(g.key, key.as_deref());
                prop_assert_eq!(g.value, value.as_slice());
                let hs: Vec<(&str, &[u8])> = g.headers.iter().collect();
                let want: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
                prop_assert_eq!(hs, want);
            }
        }

        #[test]
        fn outputs_read_back_what_was_written(outs in proptest::collection::vec((0u32..100, proptest::option::of(0u32..8), record()), 0..20), fails in proptest::collection::vec((0u32..100, ".{0,30}"), 0..5)) {
            let mut w = OutputWriter::default();
            for (input, output, (_, _, key, value, headers)) in &outs {
                w.push(*input, *output, key.as_deref(), value, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
            }
            for (input, message) in &fails {
                w.fail(*input, message.clone());
            }
            let bytes = w.finish();
            let mut r = OutputReader::new(&bytes).unwrap();
            for (input, output, (_, _, key, value, _)) in &outs {
                let g = r.next().unwrap().unwrap();
                prop_assert_eq!((g.input, g.output), (*input, *output));
                prop_assert_eq!(g.key, key.as_deref());
                prop_assert_eq!(g.value, value.as_slice());
            }
            prop_assert!(r.next().is_none());
            let got = r.failures().unwrap();
            let want: Vec<(u32, &str)> = fails.iter().map(|(i, m)| (*i, m.as_str())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
