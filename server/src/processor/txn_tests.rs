//! The commit protocol cut short at each step, as a crash would, then recovered by a broker
//! opened again on the same data: what readers of committed records see afterwards.

use std::path::Path;
use std::sync::Arc;

use super::txn::{Target, TaskTxn, recover, settle};
use crate::group::OffsetStore;
use crate::group::offsets::task_key;
use crate::log::batch::Producer;
use crate::metrics::Metrics;
use crate::record::NewRecord;
use crate::topic::{Isolation, Topic, TopicConfig, Topics, TopicsConfig};

fn open(dir: &Path) -> Topics {
    Topics::open(
        TopicsConfig {
            data_dir: dir.to_owned(),
            index_interval_bytes: 4096,
            index_bytes_max: 64 * 1024,
        },
        Arc::new(Metrics::default()),
    )
    .unwrap()
}

fn topic(topics: &Topics, name: &str) -> Arc<Topic> {
    match topics.get(name) {
        Ok(t) => t,
        Err(_) => topics.create(name, TopicConfig::default()).unwrap(),
    }
}

async fn committed_values(t: &Topic) -> Vec<String> {
    let p = Arc::clone(&t.partitions[0]);
    let chunk = p.read(0, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    chunk
        .visible()
        .map(|r| String::from_utf8(r.value_bytes().to_vec()).unwrap())
        .collect()
}

fn rec(v: &str) -> NewRecord {
    NewRecord::with_value(v.as_bytes())
}

/// A task that committed "a" and then began a second transaction ("b"), stopped after `steps`
/// of it: 'A' (records and commit record appended), 'B' (the decision), 'C' (markers).
async fn crash_during_second_commit(dir: &Path, steps: &str) {
    drop(second_commit_cut_short(dir, steps).await);
}

/// [`crash_during_second_commit`] without the crash: the broker goes on.
async fn second_commit_cut_short(dir: &Path, steps: &str) -> (Topics, OffsetStore) {
    let topics = open(dir);
    let store = OffsetStore::open(&topics).await.unwrap();
    let (input, out) = (topic(&topics, "in"), topic(&topics, "out"));
    let key = task_key("p", 0);
    let targets = vec![Target {
        topic: Arc::clone(&out),
        partition: 0,
    }];
    let mut txn = TaskTxn::start(&store, &topics, &key, &input, targets, 0)
        .await
        .unwrap()
        .txn;
    txn.commit(vec![(Arc::clone(&out), vec![(0, vec![rec("a")])])], 1, None)
        .await
        .unwrap();
    txn.settle_markers().await.unwrap();
    assert_eq!(committed_values(&out).await, ["a"]);
    // The second commit, by hand, step by step.
    let producer: Producer = txn.producer();
    let mut second = store.get(&key).unwrap();
    second.offset = 2;
    for part in &mut second.parts {
        let t = topics.get(&part.topic).unwrap();
        part.from = t.partitions[part.partition as usize].high_watermark();
        part.touched = true;
    }
    if steps.contains('A') {
        out.partitions[0]
            .append_transactional(vec![rec("b")], producer)
            .await
            .unwrap();
        store.stage(&key, &second, producer).await.unwrap();
    }
    if steps.contains('B') {
        store.partition().append_marker(producer, true, None).await.unwrap();
    }
    if steps.contains('C') {
        out.partitions[0].append_marker(producer, true, None).await.unwrap();
    }
    // While the transaction is open, committed readers do not see "b".
    if steps == "A" || steps == "AB" {
        assert_eq!(committed_values(&out).await, ["a"]);
    }
    // The process dies here (or the task failed): no clean stop, nothing flushed but what the
    // writers did.
    (topics, store)
}

/// Opens the data again and runs the recovery the broker runs before anything reads.
async fn reopen_and_recover(dir: &Path) -> (Topics, OffsetStore, Vec<String>, u64) {
    let topics = open(dir);
    let store = OffsetStore::open(&topics).await.unwrap();
    let key = task_key("p", 0);
    let last = store.get(&key).unwrap();
    let next = Producer {
        id: last.producer_id,
        epoch: last.producer_epoch + 1,
    };
    recover(&store, &topics, &key, next).await.unwrap();
    let out = topics.get("out").unwrap();
    let values = committed_values(&out).await;
    let offset = store.get(&key).unwrap().offset;
    (topics, store, values, offset)
}

#[tokio::test]
async fn a_crash_before_the_decision_aborts_the_transaction_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    crash_during_second_commit(dir.path(), "A").await;
    let (topics, store, values, offset) = reopen_and_recover(dir.path()).await;
    assert_eq!(values, ["a"], "the undecided records are aborted");
    assert_eq!(offset, 1, "the offset of the last commit that was decided");
    let out = topics.get("out").unwrap();
    let aborted = out.partitions[0].log().aborted().to_vec();
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert_eq!(store.partition().log().aborted().len(), 1, "its commit record too");
    // Both partitions are stable again: nothing holds readers back.
    for p in [&out.partitions[0], store.partition()] {
        assert_eq!(p.stable_offset(), p.high_watermark());
    }
}

#[tokio::test]
async fn a_crash_after_the_decision_commits_the_records_whose_markers_were_missing() {
    let dir = tempfile::tempdir().unwrap();
    crash_during_second_commit(dir.path(), "AB").await;
    let (topics, _, values, offset) = reopen_and_recover(dir.path()).await;
    assert_eq!(values, ["a", "b"], "decided, so committed");
    assert_eq!(offset, 2);
    assert!(topics.get("out").unwrap().partitions[0].log().aborted().is_empty());
}

#[tokio::test]
async fn a_finished_commit_needs_nothing_and_recovery_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    crash_during_second_commit(dir.path(), "ABC").await;
    let (topics, _, values, offset) = reopen_and_recover(dir.path()).await;
    assert_eq!((values, offset), (vec!["a".to_owned(), "b".to_owned()], 2));
    let hw = topics.get("out").unwrap().partitions[0].high_watermark();
    drop(topics);
    let (topics, _, values, _) = reopen_and_recover(dir.path()).await;
    assert_eq!(values, ["a", "b"]);
    assert_eq!(
        topics.get("out").unwrap().partitions[0].high_watermark(),
        hw,
        "no marker added"
    );
}

#[tokio::test]
async fn the_next_start_fences_the_old_epoch_and_goes_on_from_the_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    crash_during_second_commit(dir.path(), "A").await;
    let topics = open(dir.path());
    let store = OffsetStore::open(&topics).await.unwrap();
    let (input, out) = (topic(&topics, "in"), topic(&topics, "out"));
    let key = task_key("p", 0);
    let old = Producer {
        id: store.get(&key).unwrap().producer_id,
        epoch: store.get(&key).unwrap().producer_epoch,
    };
    let targets = vec![Target {
        topic: Arc::clone(&out),
        partition: 0,
    }];
    let resumed = TaskTxn::start(&store, &topics, &key, &input, targets, 0).await.unwrap();
    assert_eq!(resumed.offset, Some(1));
    assert_eq!(resumed.txn.producer().epoch, old.epoch + 1);
    let zombie = out.partitions[0].append_transactional(vec![rec("z")], old).await;
    assert!(
        matches!(zombie, Err(crate::topic::TopicError::Fenced { .. })),
        "{zombie:?}"
    );
    assert_eq!(committed_values(&out).await, ["a"]);
}

#[tokio::test]
async fn a_task_that_failed_before_the_decision_is_settled_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (topics, store) = second_commit_cut_short(dir.path(), "A").await;
    let out = topics.get("out").unwrap();
    assert!(
        out.partitions[0].stable_offset() < out.partitions[0].high_watermark(),
        "open: readers of committed records wait"
    );
    let key = task_key("p", 0);
    settle(&store, &topics, &key).await.unwrap();
    assert_eq!(committed_values(&out).await, ["a"], "aborted");
    for p in [&out.partitions[0], store.partition()] {
        assert_eq!(p.stable_offset(), p.high_watermark(), "nothing holds readers back");
    }
    // Settling again changes nothing, and the task starts again from the last decided commit.
    let hw = out.partitions[0].high_watermark();
    settle(&store, &topics, &key).await.unwrap();
    assert_eq!(out.partitions[0].high_watermark(), hw);
    let input = topics.get("in").unwrap();
    let targets = vec![Target {
        topic: Arc::clone(&out),
        partition: 0,
    }];
    let resumed = TaskTxn::start(&store, &topics, &key, &input, targets, 0).await.unwrap();
    assert_eq!(resumed.offset, Some(1));
}
