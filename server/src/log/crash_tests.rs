//! Power-cut tests of the storage engine: a scripted workload runs on the simulated file system
//! ([`SimFs`]), which crashes after `k` operations, for every `k` the workload has. Each crash
//! keeps only what was made durable (and, in the seeded variants, a random part of what was
//! not, the last write torn). Recovery must then open the log, keep every acknowledged record,
//! show nothing that was never written, and take appends again.
//!
//! A `kill -9` leaves the page cache to finish the job; only a test like this one sees what a
//! missing fsync of a file or of a directory costs.

use std::path::Path;
use std::sync::Arc;

use super::fs::sim::{SimFs, Survival};
use super::fs::{Fs, FsRef};
use super::{LogConfig, LogError, NewRecord, PartitionLog, batch};

const DATA: &str = "/data";
const DIR: &str = "/data/topics/t/0";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_500,
        segment_ms: i64::MAX,
        index_interval_bytes: 150,
        // Eight entries: some segments roll because their index is full.
        index_bytes_max: 64,
    }
}

/// The record stored at `offset`: the check after recovery knows what each offset must hold.
fn rec(offset: u64) -> NewRecord {
    NewRecord {
        key: Some(format!("k{}", offset % 7).into_bytes()),
        value: Some(format!("v{offset}-{}", "x".repeat((offset % 5) as usize * 20)).into_bytes()),
        headers: vec![("o".into(), offset.to_string().into_bytes())],
        timestamp: Some(1_000 + offset as i64),
    }
}

/// How the workload makes appends durable.
#[derive(Debug, Clone, Copy)]
enum Policy {
    /// The writer of `fsync: always`: append, fsync, publish, acknowledge; a durable recovery
    /// point about once in five groups.
    Always,
    /// `fsync: interval`: appends are acknowledged only at the next fsync, which also moves the
    /// recovery point; retention deletes old segments on the way.
    Interval,
}

fn sync(file: &super::fs::FileRef) -> Result<(), LogError> {
    file.sync_data().map_err(|source| LogError::Io {
        path: DIR.into(),
        source,
    })
}

/// Runs the workload until it ends or the file system crashes. `acked` is the high watermark
/// acknowledged so far: every offset below it must survive.
fn workload(fs: &FsRef, policy: Policy, acked: &mut u64) -> Result<(), LogError> {
    let (mut log, _) = PartitionLog::open(fs, Path::new(DIR), config(), false)?;
    for step in 0..36u64 {
        let next = log.next_offset();
        // One or two producers' groups per write, as the group-commit writer gathers them.
        let first: Vec<NewRecord> = (next..next + 1 + step % 3).map(rec).collect();
        let second: Vec<NewRecord> = (next + first.len() as u64..next + first.len() as u64 + step % 2)
            .map(rec)
            .collect();
        let appended = log.append(&[&first, &second], 0)?;
        match policy {
            Policy::Always => {
                sync(&appended.file)?;
                log.publish();
                *acked = log.high_watermark();
                if step % 5 == 4 {
                    log.write_recovery_point(true)?;
                }
            }
            Policy::Interval => {
                log.publish();
                if step % 4 == 3 {
                    sync(&log.active_file())?;
                    *acked = log.high_watermark();
                    log.write_recovery_point(true)?;
                }
                if step % 9 == 8 {
                    log.apply_retention(0, None, Some(3_000))?;
                }
            }
        }
    }
    Ok(())
}

/// A file system with the partition's directory, durable, as the topic layer leaves it.
fn fresh() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new(DIR)).expect("directories");
    fs.sync_dir(Path::new(DATA)).expect("sync");
    fs
}

/// Every record from the log start to the high watermark, checked against what was written.
fn check(log: &PartitionLog, acked: u64, what: &str) {
    assert!(
        log.high_watermark() >= acked,
        "{what}: acknowledged up to {acked}, recovered only up to {}",
        log.high_watermark()
    );
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let mut buf = Vec::new();
        log.read(next, 4096, &mut buf)
            .unwrap_or_else(|e| panic!("{what}: read at {next}: {e}"));
        assert!(!buf.is_empty(), "{what}: nothing at {next}");
        let mut pos = 0;
        while pos < buf.len() {
            let h = batch::verify(&buf[pos..]).unwrap_or_else(|e| panic!("{what}: {e}"));
            for r in batch::records(&buf[pos..]).expect("records") {
                let r = r.expect("record");
                if r.offset < next {
                    continue;
                }
                assert_eq!(r.offset, next, "{what}: offsets are contiguous");
                let want = rec(r.offset);
                assert_eq!(
                    r.value,
                    want.value.as_deref(),
                    "{what}: offset {} holds another record",
                    r.offset
                );
                assert_eq!(r.key, want.key.as_deref());
                next += 1;
            }
            pos += h.total_bytes;
        }
    }
}

/// Recovers the crashed file system, checks it, appends, and checks again after a second crash
/// that keeps only durable data.
fn recover_and_check(crashed: &SimFs, acked: u64, what: &str) {
    let fs: FsRef = Arc::new(crashed.clone());
    let (mut log, _) =
        PartitionLog::open(&fs, Path::new(DIR), config(), false).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    check(&log, acked, what);
    // The recovered log takes appends, and they are durable too.
    let next = log.next_offset();
    let more: Vec<NewRecord> = (next..next + 3).map(rec).collect();
    let appended = log
        .append(&[&more], 0)
        .unwrap_or_else(|e| panic!("{what}: append after recovery: {e}"));
    sync(&appended.file).expect("sync");
    log.publish();
    let acked = log.high_watermark();
    drop(log);
    let again: FsRef = Arc::new(crashed.crash(Survival::Nothing));
    let (log, _) = PartitionLog::open(&again, Path::new(DIR), config(), false)
        .unwrap_or_else(|e| panic!("{what}, second crash: open: {e}"));
    check(&log, acked, &format!("{what}, second crash"));
}

fn crash_at_every_step(policy: Policy) {
    let total = {
        let fs = fresh();
        let shared: FsRef = Arc::new(fs.clone());
        let mut acked = 0;
        workload(&shared, policy, &mut acked).expect("the workload runs without a crash");
        assert!(acked > 40, "the workload acknowledges records ({acked})");
        fs.ops()
    };
    for k in 0..=total {
        let fs = fresh();
        let base = fs.ops();
        fs.crash_after(k);
        let shared: FsRef = Arc::new(fs.clone());
        let mut acked = 0;
        let result = workload(&shared, policy, &mut acked);
        assert!(
            result.is_err() || k >= total - base,
            "the crash at step {k} stops the workload"
        );
        recover_and_check(
            &fs.crash(Survival::Nothing),
            acked,
            &format!("{policy:?}, crash at op {k}"),
        );
        for seed in 1..=6u64 {
            let what = format!("{policy:?}, crash at op {k}, partial writeback seed {seed}");
            recover_and_check(&fs.crash(Survival::RandomPrefix(seed * 7919 + k)), acked, &what);
        }
    }
}

#[test]
fn a_power_cut_at_any_step_keeps_every_acknowledged_record_fsync_always() {
    crash_at_every_step(Policy::Always);
}

#[test]
fn a_power_cut_at_any_step_keeps_every_acknowledged_record_fsync_interval_with_retention() {
    crash_at_every_step(Policy::Interval);
}

#[test]
fn a_full_disk_fails_the_append_cleanly_and_appends_resume_once_space_is_freed() {
    let fs = fresh();
    let shared: FsRef = Arc::new(fs.clone());
    let (mut log, _) = PartitionLog::open(&shared, Path::new(DIR), config(), false).expect("open");
    fs.set_capacity(Some(2_500));
    let mut acked = 0;
    let mut full = None;
    for _ in 0..200 {
        let next = log.next_offset();
        let group: Vec<NewRecord> = (next..next + 2).map(rec).collect();
        match log.append(&[&group], 0) {
            Ok(a) => {
                sync(&a.file).expect("sync");
                log.publish();
                acked = log.high_watermark();
            }
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the disk fills up");
    assert!(e.is_disk_full(), "the error says the disk is full: {e}");
    check(&log, acked, "after the disk filled");
    // A failed append changed nothing: offsets continue where the acknowledged ones ended.
    assert_eq!(log.next_offset(), acked);
    fs.set_capacity(None);
    let group: Vec<NewRecord> = (acked..acked + 2).map(rec).collect();
    let a = log.append(&[&group], 0).expect("appends resume");
    sync(&a.file).expect("sync");
    log.publish();
    check(&log, acked + 2, "after space was freed");
    let crashed: FsRef = Arc::new(fs.crash(Survival::Nothing));
    let (log, _) = PartitionLog::open(&crashed, Path::new(DIR), config(), false).expect("reopen");
    check(&log, acked + 2, "after a crash");
}

#[test]
fn a_log_closed_for_delete_writes_nothing_more() {
    let fs = fresh();
    let shared: FsRef = Arc::new(fs.clone());
    let (mut log, _) = PartitionLog::open(&shared, Path::new(DIR), config(), false).expect("open");
    let group: Vec<NewRecord> = (0..3).map(rec).collect();
    log.append(&[&group], 0).expect("append");
    log.publish();
    log.close();
    let ops = fs.ops();
    assert!(matches!(log.append(&[&group], 0), Err(LogError::Closed { .. })));
    assert!(matches!(log.roll(), Err(LogError::Closed { .. })));
    assert!(matches!(log.write_recovery_point(true), Err(LogError::Closed { .. })));
    assert_eq!(
        log.apply_retention(0, Some(0), Some(0)).expect("retention"),
        Vec::<u64>::new()
    );
    assert_eq!(fs.ops(), ops, "a closed log touches no file");
    check(&log, 3, "a closed log still reads");
}

/// Writes 120 records over 7 keys (durably, in small segments), then compacts once. Returns
/// the offset of each key's newest record.
fn compaction_workload(fs: &FsRef, acked: &mut u64) -> Result<std::collections::BTreeMap<Vec<u8>, u64>, LogError> {
    let (mut log, _) = PartitionLog::open(fs, Path::new(DIR), config(), false)?;
    let mut newest = std::collections::BTreeMap::new();
    while log.next_offset() < 120 {
        let next = log.next_offset();
        let group: Vec<NewRecord> = (next..next + 3).map(rec).collect();
        let appended = log.append(&[&group], 0)?;
        sync(&appended.file)?;
        log.publish();
        *acked = log.high_watermark();
        for (i, r) in group.iter().enumerate() {
            newest.insert(r.key.clone().unwrap_or_default(), next + i as u64);
        }
    }
    let Some(plan) = log.compaction_plan(0) else {
        return Ok(newest);
    };
    let settings = log.compaction_settings(0, i64::MAX);
    let built = super::compaction::build(fs, Path::new(DIR), &plan, settings, &mut |o, m, out| {
        log.read(o, m, out)
    })?;
    log.install_compacted(&built, 0)?;
    Ok(newest)
}

/// What compaction may change and what not: every record left is the one written at its
/// offset, offsets only grow, nothing acknowledged past the cleaned segments went, and each
/// key's newest record is there.
fn check_compacted(log: &PartitionLog, acked: u64, newest: &std::collections::BTreeMap<Vec<u8>, u64>, what: &str) {
    assert!(
        log.high_watermark() >= acked,
        "{what}: recovered up to {}",
        log.high_watermark()
    );
    let mut next = log.log_start_offset();
    let mut last_seen: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
    let mut count = 0;
    while next < log.high_watermark() {
        let mut buf = Vec::new();
        log.read(next, 4096, &mut buf)
            .unwrap_or_else(|e| panic!("{what}: read at {next}: {e} {:?}", std::error::Error::source(&e)));
        assert!(!buf.is_empty(), "{what}: nothing at {next}");
        let mut pos = 0;
        let before = next;
        while pos < buf.len() {
            let h = batch::verify(&buf[pos..]).unwrap_or_else(|e| panic!("{what}: {e}"));
            for r in batch::records(&buf[pos..]).expect("records") {
                let r = r.expect("record");
                if r.offset < next {
                    continue;
                }
                assert_eq!(
                    r.value,
                    rec(r.offset).value.as_deref(),
                    "{what}: offset {} holds another record",
                    r.offset
                );
                last_seen.insert(r.key.unwrap_or_default().to_vec(), r.offset);
                count += 1;
                next = r.offset + 1;
            }
            next = next.max(h.next_offset());
            pos += h.total_bytes;
        }
        assert!(next > before, "{what}: reads go forward");
    }
    for (key, &offset) in newest {
        if offset < acked {
            assert_eq!(
                last_seen.get(key),
                Some(&offset),
                "{what}: the newest record of {key:?} is kept"
            );
        }
    }
    assert!(count >= newest.len(), "{what}: {count} records");
}

#[test]
fn a_power_cut_at_any_step_of_a_compaction_keeps_the_newest_record_of_every_key() {
    let (total, compacted) = {
        let fs = fresh();
        let shared: FsRef = Arc::new(fs.clone());
        let mut acked = 0;
        compaction_workload(&shared, &mut acked).expect("the workload runs without a crash");
        let (log, _) = PartitionLog::open(&shared, Path::new(DIR), config(), false).expect("open");
        (fs.ops(), log.size_bytes())
    };
    let uncompacted = {
        let fs = fresh();
        let shared: FsRef = Arc::new(fs.clone());
        let (mut log, _) = PartitionLog::open(&shared, Path::new(DIR), config(), false).expect("open");
        let group: Vec<NewRecord> = (0..120).map(rec).collect();
        log.append(&[&group], 0).expect("append");
        log.size_bytes()
    };
    assert!(
        compacted < uncompacted / 2,
        "compaction frees space: {compacted} of {uncompacted} bytes"
    );
    for k in 0..=total {
        let fs = fresh();
        fs.crash_after(k);
        let shared: FsRef = Arc::new(fs.clone());
        let mut acked = 0;
        let _ = compaction_workload(&shared, &mut acked);
        // The newest record of each key among what was acknowledged, whatever the crash cut.
        let mut newest: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
        for o in 0..acked {
            newest.insert(rec(o).key.unwrap_or_default(), o);
        }
        for survival in [Survival::Nothing, Survival::RandomPrefix(k * 31 + 7)] {
            let crashed: FsRef = Arc::new(fs.crash(survival));
            let what = format!(
                "compaction, crash at op {k} ({survival:?}), files {:?} {:?}",
                crashed.list(Path::new(DIR)).unwrap_or_default(),
                crashed.list(&Path::new(DIR).join(".compact")).unwrap_or_default()
            );
            let (mut log, _) = PartitionLog::open(&crashed, Path::new(DIR), config(), false)
                .unwrap_or_else(|e| panic!("{what}: open: {e}"));
            check_compacted(&log, acked, &newest, &what);
            // It takes appends again, and a second pass works on what the first left.
            let next = log.next_offset();
            let more: Vec<NewRecord> = (next..next + 3).map(rec).collect();
            let a = log
                .append(&[&more], 0)
                .unwrap_or_else(|e| panic!("{what}: append: {e}"));
            sync(&a.file).expect("sync");
            log.publish();
        }
    }
}
