use super::*;
use crate::log::batch::{BatchKind, Producer, records};
use crate::log::recovery_point::RecoveryPoint;

fn real() -> crate::log::FsRef {
    crate::log::RealFs::shared()
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: i64::MAX,
        index_interval_bytes: 256,
        index_bytes_max: 4096,
    }
}

fn rec(i: u64) -> NewRecord {
    NewRecord {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(format!("value-{i:05}-{}", "x".repeat(40)).into_bytes()),
        headers: vec![("n".into(), i.to_string().into_bytes())],
        timestamp: Some(1_000_000 + i as i64),
    }
}

/// Appends `count` records in groups of `per_batch` and publishes them.
fn fill(log: &mut PartitionLog, from: u64, count: u64, per_batch: u64) {
    let mut i = from;
    while i < from + count {
        let n = per_batch.min(from + count - i);
        let group: Vec<_> = (i..i + n).map(rec).collect();
        log.append(&[&group], 0).unwrap();
        log.publish();
        i += n;
    }
}

/// Reads every record from `from` to the high watermark, asserting whole, ordered batches.
fn read_all(log: &PartitionLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.high_watermark() {
        let mut buf = Vec::new();
        log.read(next, 1000, &mut buf).unwrap();
        assert!(
            !buf.is_empty(),
            "read at {next} below the high watermark returned nothing"
        );
        let mut pos = 0;
        while pos < buf.len() {
            let h = batch::verify(&buf[pos..]).unwrap();
            for r in records(&buf[pos..]).unwrap() {
                let r = r.unwrap();
                if r.offset >= next {
                    assert_eq!(r.offset, next, "offsets are contiguous");
                    out.push((r.offset, r.value_bytes().to_vec()));
                    next += 1;
                }
            }
            pos += h.total_bytes;
        }
    }
    out
}

#[test]
fn consume_across_segment_roll_returns_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(2_000), true).unwrap();
    fill(&mut log, 0, 300, 7);
    assert!(
        log.segment_count() > 5,
        "small segments rolled: {}",
        log.segment_count()
    );
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 300);
    assert_eq!(got[299].1, rec(299).value.unwrap());
    // A read from the middle of a batch in the middle of a segment starts at that record.
    assert_eq!(read_all(&log, 123)[0], (123, rec(123).value.unwrap()));
}

#[test]
fn reopen_after_clean_shutdown_keeps_every_record_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(3_000), true).unwrap();
        fill(&mut log, 0, 100, 3);
    }
    let (mut log, recovery) = PartitionLog::open(&real(), dir.path(), config(3_000), true).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(log.high_watermark(), 100);
    fill(&mut log, 100, 10, 10);
    assert_eq!(read_all(&log, 0).len(), 110);
}

#[test]
fn unpublished_records_are_invisible_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, 0, 5, 5);
    log.append(&[&[rec(5)]], 0).unwrap();
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(read_all(&log, 0).len(), 5);
    let mut buf = Vec::new();
    log.read(5, 1000, &mut buf).unwrap();
    assert!(buf.is_empty());
}

#[test]
fn reads_outside_the_log_name_start_and_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, 0, 3, 3);
    let err = log.read(4, 100, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetOutOfRange {
                offset: 4,
                log_start_offset: 0,
                high_watermark: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn retention_by_bytes_deletes_oldest_whole_segments_and_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(2_000), true).unwrap();
    fill(&mut log, 0, 200, 5);
    let before = log.segment_count();
    let deleted = log.apply_retention(0, None, Some(5_000)).unwrap();
    assert!(!deleted.is_empty());
    assert_eq!(log.segment_count(), before - deleted.len());
    assert!(log.size_bytes() <= 5_000 + 2_000);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(log.read(start - 1, 100, &mut Vec::new()).is_err());
    assert_eq!(read_all(&log, start).len() as u64, 200 - start);
    for base in deleted {
        assert!(!dir.path().join(format!("{base:020}.log")).exists());
    }
}

#[test]
fn retention_by_age_spares_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(2_000), true).unwrap();
    fill(&mut log, 0, 100, 5);
    let deleted = log.apply_retention(10_000_000, Some(1_000), None).unwrap();
    assert_eq!(log.segment_count(), 1, "every sealed segment expired");
    assert!(!deleted.is_empty());
    assert_eq!(log.high_watermark(), 100);
}

#[test]
fn idle_segment_rolls_by_age_so_retention_can_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 50,
        ..config(1 << 20)
    };
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), cfg, true).unwrap();
    log.append(&[&[rec(0)]], 1_000).unwrap();
    log.publish();
    assert!(!log.roll_if_idle(1_020).unwrap());
    assert!(log.roll_if_idle(1_060).unwrap());
    assert_eq!(log.segment_count(), 2);
    // Appending to an aged segment rolls it first, too.
    log.append(&[&[rec(1)]], 2_000).unwrap();
    log.append(&[&[rec(2)]], 2_100).unwrap();
    log.publish();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn recovery_cuts_a_torn_last_batch_at_every_byte_and_keeps_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, 0, 40, 4);
    let good = log.active.size();
    let last: Vec<_> = (40..45).map(rec).collect();
    log.append(&[&last], 0).unwrap();
    let full = log.active.size();
    drop(log);
    let path = dir.path().join(format!("{:020}.log", 0));
    let bytes = std::fs::read(&path).unwrap();
    for cut in good..full {
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
        assert_eq!(log.high_watermark(), 40, "cut at {cut}");
        assert_eq!(recovery.truncated_bytes, cut - good, "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(read_all(&log, 0).len(), 40);
    }
    std::fs::write(&path, &bytes).unwrap();
    let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!((log.high_watermark(), recovery.truncated_bytes), (45, 0));
}

#[test]
fn recovery_truncates_at_a_corrupt_batch_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, 0, 10, 2);
    let mut buf = Vec::new();
    log.read(4, 1, &mut buf).unwrap();
    let third = log.active.position_of(4, log.active.size()).unwrap();
    drop(log);
    let path = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[third as usize + 70] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!(log.high_watermark(), 4);
    assert!(recovery.reason.unwrap().contains("checksum"));
}

#[test]
fn recovery_rebuilds_an_index_that_disagrees_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, 0, 200, 3);
    drop(log);
    let index = dir.path().join(format!("{:020}.index", 0));
    let mut bytes = std::fs::read(&index).unwrap();
    // Point the third entry at a wrong position.
    bytes[2 * 8 + 4..2 * 8 + 8].copy_from_slice(&7u32.to_be_bytes());
    std::fs::write(&index, &bytes).unwrap();
    let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert!(recovery.index_rebuilt);
    assert_eq!(recovery.truncated_bytes, 0);
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 200);
    for start in [1, 50, 101, 199] {
        assert_eq!(read_all(&log, start)[0].0, start);
    }
}

#[test]
fn offset_for_timestamp_finds_a_lower_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(3_000), true).unwrap();
    fill(&mut log, 0, 200, 4);
    for target in [0u64, 17, 120, 199] {
        let at = log.offset_for_timestamp(1_000_000 + target as i64).unwrap();
        assert!(at <= target, "lower bound {at} for record {target}");
    }
    assert_eq!(log.offset_for_timestamp(i64::MAX).unwrap(), 200);
}

/// Fills a partition, records its recovery point, appends more and tears the last batch:
/// the state a crash leaves. Returns (point, offsets that must survive, log path, torn bytes).
fn crash_after_a_recovery_point(dir: &Path, durable: bool) -> (RecoveryPoint, u64, u64) {
    let (mut log, _) = PartitionLog::open(&real(), dir, config(1 << 20), true).unwrap();
    fill(&mut log, 0, 300, 3);
    let point = log.recovery_point(durable).unwrap();
    point.write(&real(), dir).unwrap();
    fill(&mut log, 300, 60, 4);
    let good = log.active.size();
    let torn: Vec<_> = (360..365).map(rec).collect();
    log.append(&[&torn], 0).unwrap();
    let full = log.active.size();
    drop(log);
    let path = dir.join(format!("{:020}.log", 0));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..(good + (full - good) / 2) as usize]).unwrap();
    (point, 360, (full - good) / 2)
}

#[test]
fn recovery_starts_at_the_recovery_point_and_still_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (point, survive, torn) = crash_after_a_recovery_point(dir.path(), false);
    assert!(point.position > 0 && point.index_entries > 0);
    let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!(recovery.verified_from, point.position, "the scan starts at the point");
    assert_eq!(recovery.truncated_bytes, torn);
    assert_eq!(log.high_watermark(), survive);
    let got = read_all(&log, 0);
    assert_eq!(got.len() as u64, survive);
    assert_eq!(got[299].1, rec(299).value.unwrap());
    for start in [0, 150, 298, 299, 300, 301, 359] {
        assert_eq!(read_all(&log, start)[0].0, start, "read from {start}");
    }
    // The indexes rebuilt past the point serve lookups like the ones before it.
    let now = log.recovery_point(false).unwrap();
    assert!(now.index_entries > point.index_entries, "{now:?}");
    // Reopened, the log appends where it stopped.
    drop(log);
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    fill(&mut log, survive, 5, 5);
    assert_eq!(read_all(&log, 0).len() as u64, survive + 5);
}

#[test]
fn a_recovery_point_that_does_not_fit_the_segment_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (point, survive, _) = crash_after_a_recovery_point(dir.path(), false);
    let bad = [
        RecoveryPoint {
            position: 1 << 40,
            ..point
        },
        RecoveryPoint {
            segment_base: 7,
            ..point
        },
        RecoveryPoint {
            index_entries: 10_000,
            ..point
        },
        // The last index entry it names would not point at a batch boundary.
        RecoveryPoint { position: 100, ..point },
    ];
    for p in bad {
        p.write(&real(), dir.path()).unwrap();
        let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
        assert_eq!(recovery.verified_from, 0, "{p:?} must not be used");
        assert_eq!(log.high_watermark(), survive);
        assert_eq!(read_all(&log, 0).len() as u64, survive);
    }
}

#[test]
fn a_page_cache_recovery_point_from_another_boot_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (point, survive, _) = crash_after_a_recovery_point(dir.path(), false);
    let other_boot = RecoveryPoint {
        boot_id: [1; 16],
        ..point
    };
    other_boot.write(&real(), dir.path()).unwrap();
    let (_, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!(recovery.verified_from, 0, "after a reboot only fsynced points count");

    let dir = tempfile::tempdir().unwrap();
    let (point, _, _) = crash_after_a_recovery_point(dir.path(), true);
    RecoveryPoint {
        boot_id: [1; 16],
        ..point
    }
    .write(&real(), dir.path())
    .unwrap();
    let (log, recovery) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!(
        recovery.verified_from, point.position,
        "a durable point survives a reboot"
    );
    assert_eq!(log.high_watermark(), survive);
}

#[test]
fn a_big_group_is_stored_as_batches_of_at_most_a_mebibyte_with_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 30), true).unwrap();
    let big: Vec<NewRecord> = (0..40)
        .map(|i| NewRecord {
            value: Some(vec![b'x'; 100_000 + i]),
            ..rec(i as u64)
        })
        .collect();
    let small = vec![rec(99)];
    let a = log.append(&[&[], &big, &small], 0).unwrap();
    log.publish();
    assert_eq!(a.base_offsets, [0, 40], "one base per non-empty group");
    let mut buf = Vec::new();
    log.read(0, 1, &mut buf).unwrap();
    let h = batch::verify(&buf).unwrap();
    assert!(
        h.total_bytes <= batch::BATCH_BYTES_MAX + 4096,
        "{} bytes in one batch",
        h.total_bytes
    );
    assert!(h.record_count < 40, "the group was split");
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 41);
    assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), (0..41).collect::<Vec<_>>());
}

fn txn_append(log: &mut PartitionLog, kind: BatchKind, records: &[NewRecord]) -> u64 {
    log.check_producer(&kind).unwrap();
    let a = log
        .append_groups(
            &[Group {
                records,
                kind,
                aborted_from: None,
            }],
            0,
        )
        .unwrap();
    log.publish();
    a.base_offsets[0]
}

#[test]
fn an_open_transaction_holds_the_last_stable_offset_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
    let p = Producer { id: 3, epoch: 0 };
    fill(&mut log, 0, 2, 2);
    assert_eq!(log.stable_offset(), 2);
    let first = txn_append(&mut log, BatchKind::Transactional(p), &[rec(2), rec(3)]);
    assert_eq!(first, 2);
    fill(&mut log, 4, 3, 3);
    assert_eq!(
        (log.high_watermark(), log.stable_offset()),
        (7, 2),
        "held at the open transaction"
    );
    txn_append(&mut log, BatchKind::Transactional(p), &[rec(7)]);
    assert_eq!(log.stable_offset(), 2);
    let marker = txn_append(
        &mut log,
        BatchKind::Marker {
            producer: p,
            commit: true,
        },
        &[],
    );
    assert_eq!(marker, 8);
    assert_eq!((log.high_watermark(), log.stable_offset()), (9, 9));
    assert!(log.aborted().is_empty(), "a commit is not indexed");
}

#[test]
fn an_abort_is_indexed_durably_and_a_reopened_log_still_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Producer { id: 4, epoch: 1 };
    {
        let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
        fill(&mut log, 0, 1, 1);
        txn_append(&mut log, BatchKind::Transactional(p), &[rec(1), rec(2)]);
        fill(&mut log, 3, 1, 1);
        txn_append(
            &mut log,
            BatchKind::Marker {
                producer: p,
                commit: false,
            },
            &[],
        );
        assert_eq!(log.stable_offset(), 5);
    }
    let (log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
    assert_eq!(
        log.aborted_between(0, 5),
        [crate::log::AbortedTxn {
            producer_id: 4,
            first_offset: 1,
            last_offset: 4
        }]
    );
    assert!(log.aborted_between(5, 9).is_empty());
}

#[test]
fn a_transaction_a_crash_left_open_is_found_from_a_lower_bound_and_aborted_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let p = Producer { id: 9, epoch: 0 };
    let q = Producer { id: 10, epoch: 0 };
    {
        let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(600), true).unwrap();
        txn_append(&mut log, BatchKind::Transactional(p), &[rec(0)]);
        txn_append(
            &mut log,
            BatchKind::Marker {
                producer: p,
                commit: true,
            },
            &[],
        );
        fill(&mut log, 2, 20, 2);
        txn_append(&mut log, BatchKind::Transactional(q), &[rec(22)]);
        txn_append(&mut log, BatchKind::Transactional(p), &[rec(23)]);
        fill(&mut log, 24, 20, 2);
        txn_append(&mut log, BatchKind::Transactional(p), &[rec(44)]);
        assert!(log.segment_count() > 2, "the open transaction spans segments");
    }
    // Reopened, the log does not know what was open: the producer's own record of where it
    // wrote (a lower bound) finds it.
    let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(600), false).unwrap();
    assert_eq!(log.stable_offset(), log.high_watermark());
    assert_eq!(log.open_transaction(9), None);
    let found = |log: &PartitionLog, p, from| {
        let u = log.unclosed_transaction(p, from).unwrap();
        (u.first, u.marker_seen)
    };
    assert_eq!(found(&log, 9, 0), (Some(23), true), "after its last marker");
    assert_eq!(found(&log, 9, 30), (Some(44), false), "from a later bound");
    assert_eq!(found(&log, 10, 0), (Some(22), false));
    assert_eq!(found(&log, 77, 0), (None, false));
    let kind = BatchKind::Marker {
        producer: Producer { id: 9, epoch: 1 },
        commit: false,
    };
    log.check_producer(&kind).unwrap();
    log.append_groups(
        &[Group {
            records: &[],
            kind,
            aborted_from: Some(23),
        }],
        0,
    )
    .unwrap();
    log.publish();
    assert_eq!(log.aborted()[0].first_offset, 23);
    assert_eq!(found(&log, 9, 0), (None, true));
    // The abort bumped the epoch: the zombie of epoch 0 is fenced.
    let zombie = BatchKind::Transactional(p);
    assert!(matches!(
        log.check_producer(&zombie),
        Err(LogError::Fenced { current_epoch: 1, .. })
    ));
}

mod properties {
    //! Recovery under arbitrary tails: whatever bytes follow the last whole batch (a torn
    //! write, garbage, a damaged batch), opening after a crash keeps exactly the whole batches
    //! before them and never fails or panics.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn recovery_keeps_the_whole_batches_before_any_tail(
            groups in proptest::collection::vec(1u64..6, 1..12),
            tail in proptest::collection::vec(any::<u8>(), 0..400),
            damage in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), true).unwrap();
            let mut next = 0;
            for n in &groups {
                fill(&mut log, next, *n, *n);
                next += n;
            }
            drop(log);
            let path = dir.path().join(format!("{:020}.log", 0));
            let mut bytes = std::fs::read(&path).unwrap();
            let whole = bytes.len();
            // Damage a byte of the last batch, or not; then add the tail.
            let last = groups.last().copied().unwrap_or(0);
            let mut expect = next;
            if let Some((at, xor)) = damage && xor != 0 {
                // The last batch starts where the walk over the batch headers ends before `whole`.
                let mut start = 0;
                loop {
                    let h = batch::BatchHeader::parse(&bytes[start..]).unwrap();
                    if start + h.total_bytes >= whole {
                        break;
                    }
                    start += h.total_bytes;
                }
                let len = whole - start;
                // Inside the CRC-covered part, so the batch is surely damaged.
                let i = start + batch::ATTRIBUTES + at.index(len - batch::ATTRIBUTES);
                bytes[i] ^= xor;
                expect -= last;
            }
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            let (log, _) = PartitionLog::open(&real(), dir.path(), config(1 << 20), false).unwrap();
            prop_assert_eq!(log.high_watermark(), expect);
            let got = read_all(&log, 0);
            prop_assert_eq!(got.len() as u64, expect);
            for (i, (offset, value)) in got.iter().enumerate() {
                prop_assert_eq!(*offset, i as u64);
                let want = rec(i as u64).value.unwrap_or_default();
                prop_assert_eq!(value, &want);
            }
        }
    }
}
