//! The guests' own executor: a multi-threaded tokio runtime apart from the one serving HTTP,
//! storage writers and SSE. Guest calls yield at every epoch tick, so guests share its threads
//! fairly among themselves; and however busy (or hostile) guests are, the broker's own tasks
//! run on threads guests never hold, so a looping guest costs produce latency only the CPU it
//! takes, not a blocked worker.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Starts its threads on first use (the CLI's `processor test` never needs them).
#[derive(Debug, Default)]
pub struct Executor {
    runtime: OnceLock<Runtime>,
}

impl Executor {
    fn runtime(&self) -> &Runtime {
        self.runtime.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("weir-guest")
                .enable_all()
                .build()
                .expect("the guest runtime starts")
        })
    }

    /// Runs `fut` on the guests' threads.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(fut)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids: let it wind down apart.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
