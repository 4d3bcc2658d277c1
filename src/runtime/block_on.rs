//! Blocking a plain (non-shard) thread on a future: park until woken.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes a thread parked in `std::thread::park` (or `park_timeout`).
pub(crate) struct ThreadWaker(pub(crate) Thread);

impl ThreadWaker {
    /// A waker that unparks the calling thread.
    pub(crate) fn current() -> Waker {
        Waker::from(Arc::new(ThreadWaker(thread::current())))
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on the calling thread, parking between polls.
///
/// # Panics
/// On a shard thread: parking there would stop the shard's loop, and with it the ring and the
/// timers the future may be waiting for. Inside a shard, `.await` instead.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    assert!(
        !super::context::on_shard(),
        "block_on would stall this shard's event loop (and deadlock on its own I/O); use .await inside shard tasks"
    );
    let mut fut = std::pin::pin!(fut);
    let waker = ThreadWaker::current();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}
