//! Who may hold a live instance. A live instance takes one of `instances_max` slots (the
//! pooling allocator is sized for them) and reserves its memory cap from the guests' memory
//! budget, both given back when it is dropped. Instantiating waits, in turn, for both: a full
//! pool makes a processor wait for room, never fail, and the sum of the caps of all live
//! instances never passes the budget, whatever guests do.
//!
//! Idle instances are dropped (the runners decide when), so thousands of deployed processors
//! share the pool: an idle one holds no slot and no memory, and comes back from its compiled,
//! pre-linked component in well under a millisecond for a Rust guest.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory is counted in MiB so any cap fits one acquisition.
const MIB: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct InstancePool {
    slots: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_total_bytes: u64,
    slots_total: usize,
    waiting: AtomicUsize,
    /// Bumped whenever someone starts waiting: idle holders give their instance up at once.
    arrivals: tokio::sync::watch::Sender<u64>,
}

/// A live instance's slot and memory; dropped with the instance.
#[derive(Debug)]
pub struct InstancePermit {
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
    _share: Option<OwnedSemaphorePermit>,
}

/// Counts a waiter while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InstancePool {
    pub fn new(slots: usize, memory_total_bytes: u64) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            memory: Arc::new(Semaphore::new((memory_total_bytes / MIB).max(1) as usize)),
            memory_total_bytes,
            slots_total: slots,
            waiting: AtomicUsize::new(0),
            arrivals: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A receiver that changes whenever someone starts waiting for room.
    pub fn arrivals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.arrivals.subscribe()
    }

    fn mib(memory_bytes: usize) -> u32 {
        (memory_bytes as u64).div_ceil(MIB).max(1).min(u64::from(u32::MAX)) as u32
    }

    /// Waits for a slot and `memory_bytes` of the budget (and first for a permit of `share`,
    /// the processor's own limit, if given).
    pub async fn acquire(&self, memory_bytes: usize, share: Option<Arc<Semaphore>>) -> InstancePermit {
        // The processor's own limit first: waiting behind one's own share is not waiting for
        // the pool, and must not make others give up their instances.
        let share = match share {
            Some(s) => s.acquire_owned().await.ok(),
            None => None,
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if self.slots.available_permits() == 0 || self.memory.available_permits() < Self::mib(memory_bytes) as usize {
            self.arrivals.send_modify(|n| *n = n.wrapping_add(1));
        }
        let memory = Arc::clone(&self.memory)
            .acquire_many_owned(Self::mib(memory_bytes))
            .await
            .expect("the pool's semaphores are never closed");
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the pool's semaphores are never closed");
        InstancePermit {
            _slot: slot,
            _memory: memory,
            _share: share,
        }
    }

    /// Partitions waiting for room now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether someone waits for room: an idle instance should make way.
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// How many instances of `memory_bytes` one processor may hold at once: a quarter of the
    /// slots and of the memory budget (at least one), so no processor takes the whole pool.
    pub fn share(&self, memory_bytes: usize) -> usize {
        let by_memory = (self.memory_total_bytes / 4) / (u64::from(Self::mib(memory_bytes)) * MIB);
        (self.slots_total / 4).min(by_memory as usize).max(1)
    }

    /// Whether an instance with this cap could ever be live.
    pub fn fits(&self, memory_bytes: usize) -> bool {
        u64::from(Self::mib(memory_bytes)) * MIB <= self.memory_total_bytes.max(MIB)
    }

    /// `(live instances, memory reserved, memory budget)` in bytes.
    pub fn usage(&self) -> (usize, u64, u64) {
        let live = self.slots_total - self.slots.available_permits();
        let free = self.memory.available_permits() as u64 * MIB;
        (
            live,
            self.memory_total_bytes.saturating_sub(free),
            self.memory_total_bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn instances_wait_for_memory_and_slots_and_get_them_when_others_go() {
        let pool = Arc::new(InstancePool::new(2, 100 * MIB));
        let a = pool.acquire(60 * 1024 * 1024, None).await;
        assert_eq!(pool.usage(), (1, 60 * MIB, 100 * MIB));
        let waiter = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.acquire(50 * 1024 * 1024, None).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(pool.has_waiters(), "50 MiB does not fit beside 60 of 100");
        drop(a);
        let b = waiter.await.unwrap();
        assert!(!pool.has_waiters());
        assert_eq!(pool.usage().1, 50 * MIB);
        assert!(pool.fits(100 * 1024 * 1024) && !pool.fits(101 * 1024 * 1024));
        drop(b);
        assert_eq!(pool.usage(), (0, 0, 100 * MIB));
    }
}
