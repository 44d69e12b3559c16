//! `at_least_once` outputs: a task's plain appends, made in the background in the order the
//! task sent them, those queued while one is in flight merged into the next, so the task goes
//! on processing while its outputs reach the disk, and a checkpoint of the input offset waits
//! only until everything before it is appended.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::txn::TopicWrites;
use crate::log::NewRecord;
use crate::topic::{AppendMode, Topic};

/// Sends queued before a task waits for the appender: about this many batches' outputs may be
/// in memory and not yet on disk.
const QUEUE: usize = 8;

/// The background appender of one task.
pub struct Appender {
    tx: mpsc::Sender<(u64, Vec<TopicWrites>)>,
    task: tokio::task::JoinHandle<()>,
    /// The last send appended, or why appending stopped.
    done: watch::Receiver<Result<u64, String>>,
    sent: u64,
}

impl Appender {
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::channel::<(u64, Vec<TopicWrites>)>(QUEUE);
        let (report, done) = watch::channel(Ok(0));
        let task = tokio::spawn(async move {
            while let Some((mut seq, writes)) = rx.recv().await {
                let mut merged = Merged::default();
                merged.add(writes);
                while let Ok((s, writes)) = rx.try_recv() {
                    seq = s;
                    merged.add(writes);
                }
                if let Err(e) = merged.append().await {
                    let _ = report.send(Err(format!("could not write output: {e}")));
                    return;
                }
                let _ = report.send(Ok(seq));
            }
        });
        Self {
            tx,
            task,
            done,
            sent: 0,
        }
    }

    /// Stops appending what is queued and waits until the appender is gone (an append under
    /// way may still complete): what it dropped was never checkpointed, so the input it came
    /// from is processed again.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Queues `writes` (waiting while the queue is full). `Err`: an earlier append failed, which
    /// is fatal to the task.
    pub async fn send(&mut self, writes: Vec<TopicWrites>) -> Result<(), String> {
        if let Err(e) = &*self.done.borrow() {
            return Err(e.clone());
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.sent += 1;
        if self.tx.send((self.sent, writes)).await.is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Waits until everything sent so far is appended.
    pub async fn flushed(&mut self) -> Result<(), String> {
        let sent = self.sent;
        let waited = match self.done.wait_for(|d| d.as_ref().map_or(true, |&s| s >= sent)).await {
            Ok(d) => Some(d.clone().map(|_| ())),
            Err(_) => None,
        };
        waited.unwrap_or_else(|| Err(self.stopped()))
    }

    fn stopped(&self) -> String {
        match &*self.done.borrow() {
            Err(e) => e.clone(),
            Ok(_) => "the output appender stopped".into(),
        }
    }
}

/// Records per partition of one topic, in the order they were sent.
type Groups = BTreeMap<u32, Vec<NewRecord>>;

/// Writes merged per topic and partition, in the order they were sent.
#[derive(Default)]
struct Merged {
    topics: Vec<(Arc<Topic>, Groups)>,
}

impl Merged {
    fn add(&mut self, writes: Vec<TopicWrites>) {
        for (topic, groups) in writes {
            let i = match self.topics.iter().position(|(t, _)| Arc::ptr_eq(t, &topic)) {
                Some(i) => i,
                None => {
                    self.topics.push((topic, BTreeMap::new()));
                    self.topics.len() - 1
                }
            };
            for (partition, records) in groups {
                self.topics[i].1.entry(partition).or_default().extend(records);
            }
        }
    }

    /// One append per topic, the topics side by side.
    async fn append(self) -> Result<(), crate::topic::TopicError> {
        let appends = self.topics.into_iter().map(|(topic, groups)| async move {
            topic.append_to(groups.into_iter().collect(), AppendMode::Plain).await
        });
        for r in futures::future::join_all(appends).await {
            r?;
        }
        Ok(())
    }
}
