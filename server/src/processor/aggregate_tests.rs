//! The operator against an independent computation: for any arrival order, batching,
//! lateness and grace, `emit: final` gives exactly the windows a brute force over the
//! accepted records gives, each once; `emit: update`'s last result per window is the same.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::state::StateLimits;

const SIZE: i64 = 20;
const ADVANCE: i64 = 5;
const GAP: i64 = 7;
const KEYS: [&[u8]; 3] = [b"a", b"b", b"c"];

#[derive(Debug, Clone)]
struct Rec {
    key: usize,
    t: i64,
    v: i64,
}

type Results = BTreeMap<(Vec<u8>, i64, i64), i64>;
/// A final result: key, start, end, sum.
type Final = (Vec<u8>, i64, i64, i64);

fn window(kind: &str, grace: i64, lag: i64, emit: &str) -> WindowSpec {
    let mut j = serde_json::json!({"type": kind, "grace_ms": grace, "out_of_order_ms": lag, "emit": emit});
    match kind {
        "session" => j["gap_ms"] = GAP.into(),
        "hopping" => {
            j["size_ms"] = SIZE.into();
            j["advance_ms"] = ADVANCE.into();
        }
        _ => j["size_ms"] = SIZE.into(),
    }
    serde_json::from_value(j).unwrap()
}

/// Runs the operator as the runner does: batches, then due timers after each; then moves
/// the clock far on and fires everything. Returns (final outputs in order, last update per
/// window).
fn run(agg: &Aggregator, recs: &[Rec], cuts: &[usize]) -> (Vec<Final>, Results) {
    let mut s = TaskState::new(&agg.stores(), StateLimits::default());
    s.lag = agg.window.as_ref().map_or(0, |w| w.lag);
    let values: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| format!(r#"{{"v":{}}}"#, r.v).into_bytes())
        .collect();
    let views: Vec<RecordView<'_>> = recs
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (r, val))| RecordView {
            offset: i as u64,
            timestamp: r.t,
            key: Some(KEYS[r.key]),
            value: Some(val),
            headers: Vec::new(),
        })
        .collect();
    let mut finals = Vec::new();
    let mut updates = Results::new();
    let note = |r: NewRecord, finals: &mut Vec<_>, updates: &mut Results, is_final: bool| {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let k = (r.key.unwrap(), v["start"].as_i64().unwrap(), v["end"].as_i64().unwrap());
        let sum = v["sum"].as_i64().unwrap();
        if is_final {
            finals.push((k.0, k.1, k.2, sum));
        } else {
            updates.insert(k, sum);
        }
    };
    let fire = |s: &mut TaskState, finals: &mut Vec<_>, updates: &mut Results| loop {
        s.begin_batch();
        let due = s.take_due_timers(0, 1000);
        if due.is_empty() {
            break;
        }
        for r in agg.fire(s, &due).unwrap() {
            note(r, finals, updates, true);
        }
        s.end_batch();
    };
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (recs.len() + 1)).collect();
    bounds.push(recs.len());
    bounds.sort_unstable();
    for end in bounds {
        if end <= at {
            continue;
        }
        s.begin_batch();
        let out = agg.process(&mut s, &views[at..end], false);
        s.end_batch();
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        for e in out.emitted {
            note(e.record, &mut finals, &mut updates, false);
        }
        fire(&mut s, &mut finals, &mut updates);
        at = end;
    }
    s.watermark = Some(1_000_000);
    fire(&mut s, &mut finals, &mut updates);
    assert_eq!(s.stores()[0].len(), 0, "every window is gone after its retention");
    (finals, updates)
}

/// Each record's watermark when it arrives (the clock includes the record).
fn arrival_watermarks(recs: &[Rec], lag: i64) -> Vec<i64> {
    let mut clock = i64::MIN;
    recs.iter()
        .map(|r| {
            clock = clock.max(r.t);
            clock - lag
        })
        .collect()
}

/// Brute force: which windows there are and what each sums, by the documented rules.
fn expected(kind: &str, recs: &[Rec], grace: i64, lag: i64) -> Results {
    let wm = arrival_watermarks(recs, lag);
    let mut out = Results::new();
    match kind {
        "tumbling" | "hopping" => {
            let advance = if kind == "tumbling" { SIZE } else { ADVANCE };
            for (r, &w) in recs.iter().zip(&wm) {
                let mut s = r.t.div_euclid(advance) * advance;
                while s > r.t - SIZE {
                    if s + SIZE + grace > w {
                        *out.entry((KEYS[r.key].to_vec(), s, s + SIZE)).or_default() += r.v;
                    }
                    s -= advance;
                }
            }
        }
        "sliding" => {
            // A record is late once the last window that could hold it, [t, t + size), closed.
            let accepted: Vec<(usize, &Rec)> = recs
                .iter()
                .enumerate()
                .filter(|(i, r)| r.t + SIZE + grace > wm[*i])
                .collect();
            for &(i, r) in &accepted {
                // The window ending at a record is made when it arrives; the one after it when
                // the first record after it (within size) is there too: if still open then.
                let after = accepted
                    .iter()
                    .filter(|(_, y)| y.key == r.key && r.t < y.t && y.t <= r.t + SIZE)
                    .map(|(j, _)| (*j).max(i))
                    .min();
                for (start, made) in [(r.t - SIZE + 1, Some(i)), (r.t + 1, after)] {
                    let end = start + SIZE;
                    let Some(made) = made else { continue };
                    if end + grace <= wm[made] {
                        continue;
                    }
                    let sum: Option<i64> = accepted
                        .iter()
                        .filter(|(j, x)| x.key == r.key && start <= x.t && x.t < end && end + grace > wm[*j])
                        .map(|(_, x)| x.v)
                        .reduce(|a, b| a + b);
                    if let Some(sum) = sum {
                        out.insert((KEYS[r.key].to_vec(), start, end), sum);
                    }
                }
            }
        }
        "session" => {
            // Per key: sessions as (first, last, values).
            let mut sessions: Vec<Vec<(i64, i64, Vec<i64>)>> = vec![Vec::new(); KEYS.len()];
            for (r, &w) in recs.iter().zip(&wm) {
                let list = &mut sessions[r.key];
                let open = |last: i64| last + 1 + GAP + grace > w;
                let (joined, rest): (Vec<_>, Vec<_>) = list
                    .drain(..)
                    .partition(|(first, last, _)| open(*last) && first - GAP <= r.t && r.t <= last + GAP);
                let first = joined.iter().map(|s| s.0).chain([r.t]).min().unwrap();
                let last = joined.iter().map(|s| s.1).chain([r.t]).max().unwrap();
                *list = rest;
                if open(last) {
                    let mut vals: Vec<i64> = joined.into_iter().flat_map(|s| s.2).collect();
                    vals.push(r.v);
                    list.push((first, last, vals));
                } else {
                    list.extend(joined);
                }
            }
            for (k, list) in sessions.into_iter().enumerate() {
                for (first, last, vals) in list {
                    out.insert((KEYS[k].to_vec(), first, last + 1), vals.iter().sum());
                }
            }
        }
        _ => unreachable!(),
    }
    out
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(
        (0..KEYS.len(), 0i64..150, -5i64..10).prop_map(|(key, t, v)| Rec { key, t, v }),
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn windows_match_a_brute_force_whatever_the_order_and_batching(
        recs in records(),
        cuts in prop::collection::vec(0usize..64, 0..6),
        kind in prop::sample::select(vec!["tumbling", "hopping", "sliding", "session"]),
        grace in prop::sample::select(vec![0i64, 10]),
        lag in prop::sample::select(vec![0i64, 5]),
    ) {
        let agg = |emit| Aggregator::new(
            &serde_json::from_value(serde_json::json!({"op": "sum", "path": "/v"})).unwrap(),
            Some(&window(kind, grace, lag, emit)),
        ).unwrap();
        let want = expected(kind, &recs, grace, lag);
        let (finals, _) = run(&agg("final"), &recs, &cuts);
        let got: Results = finals.iter().map(|(k, s, e, v)| ((k.clone(), *s, *e), *v)).collect();
        prop_assert_eq!(finals.len(), got.len(), "a window was emitted twice");
        prop_assert_eq!(&got, &want);
        let (finals, updates) = run(&agg("update"), &recs, &cuts);
        prop_assert!(finals.is_empty());
        for (k, v) in &want {
            prop_assert_eq!(updates.get(k), Some(v), "last update of {:?}", k);
        }
    }
}

#[test]
fn a_record_after_its_window_closed_is_late_and_changes_nothing() {
    let agg = Aggregator::new(
        &serde_json::from_value(serde_json::json!({"op": "count"})).unwrap(),
        Some(&window("tumbling", 0, 0, "final")),
    )
    .unwrap();
    let mut s = TaskState::new(&agg.stores(), StateLimits::default());
    let view = |t: i64| RecordView {
        offset: 0,
        timestamp: t,
        key: Some(b"k"),
        value: Some(b""),
        headers: Vec::new(),
    };
    let out = agg.process(&mut s, &[view(5), view(45), view(3)], false);
    assert_eq!(out.late, vec![2]);
    let due = s.take_due_timers(0, 10);
    let finals = agg.fire(&mut s, &due).unwrap();
    assert_eq!(finals.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(finals[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"key": "k", "start": 0, "end": 20, "count": 1}));
    assert_eq!(finals[0].headers[0], ("weir-window-start".to_owned(), b"0".to_vec()));
    assert_eq!(finals[0].timestamp, Some(19));
}

#[test]
fn without_a_window_each_batch_emits_the_new_total_per_key() {
    let agg = Aggregator::new(
        &serde_json::from_value(serde_json::json!({"op": "avg", "path": "/x"})).unwrap(),
        None,
    )
    .unwrap();
    let mut s = TaskState::new(&agg.stores(), StateLimits::default());
    let vals = [&br#"{"x":1}"#[..], br#"{"x":2}"#, br#"{"y":2}"#, br#"{"x":6}"#];
    let keys = [b"a", b"b", b"a", b"a"];
    let views: Vec<RecordView<'_>> = vals
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (v, k))| RecordView {
            offset: i as u64,
            timestamp: 100 + i as i64,
            key: Some(&k[..]),
            value: Some(v),
            headers: Vec::new(),
        })
        .collect();
    let out = agg.process(&mut s, &views, false);
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].1.contains("nothing at /x"), "{:?}", out.failed);
    let got: Vec<serde_json::Value> = out
        .emitted
        .iter()
        .map(|e| serde_json::from_slice(e.record.value.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            serde_json::json!({"key": "a", "avg": 3.5, "count": 2}),
            serde_json::json!({"key": "b", "avg": 2.0, "count": 1}),
        ]
    );
    assert_eq!(out.emitted[0].input, 3);
    assert_eq!(out.emitted[0].record.timestamp, Some(103));
}

#[test]
fn a_record_that_fails_moves_no_clock() {
    let agg = Aggregator::new(
        &serde_json::from_value(serde_json::json!({"op": "sum", "path": "/v"})).unwrap(),
        Some(&window("tumbling", 0, 0, "final")),
    )
    .unwrap();
    let mut s = TaskState::new(&agg.stores(), StateLimits::default());
    let view = |t: i64, value: &'static [u8]| RecordView {
        offset: 0,
        timestamp: t,
        key: Some(b"k"),
        value: Some(value),
        headers: Vec::new(),
    };
    let out = agg.process(&mut s, &[view(5, br#"{"v":1}"#), view(5000, br#"{"v":"x"}"#)], false);
    assert_eq!(out.failed.len(), 1);
    assert_eq!(s.watermark, Some(5), "the failed record's time is not the clock's");
    let out = agg.process(&mut s, &[view(7, br#"{"v":2}"#)], false);
    assert!(out.late.is_empty());
}

#[test]
fn a_redeployed_count_distinct_reading_another_aggregates_value_does_not_panic() {
    let agg = Aggregator::new(
        &serde_json::from_value(serde_json::json!({"op": "count_distinct", "path": "/v"})).unwrap(),
        None,
    )
    .unwrap();
    let mut s = TaskState::new(&agg.stores(), StateLimits::default());
    let ws = s.index_of(WINDOWS_STORE).unwrap() as u32;
    // What a count left there: 1 as u64 LE, whose first byte reads as the estimate's tag.
    s.set(ws, &crate::window::group_prefix(Some(b"k")), &1u64.to_le_bytes())
        .unwrap();
    let v = RecordView {
        offset: 0,
        timestamp: 0,
        key: Some(b"k"),
        value: Some(br#"{"v":1}"#),
        headers: Vec::new(),
    };
    let out = agg.process(&mut s, &[v], false);
    assert_eq!(out.emitted.len(), 1);
}
