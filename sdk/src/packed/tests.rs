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
