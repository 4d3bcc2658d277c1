//! Timers: `sleep`, `timeout`, and the per-shard timer set the run loop fires.
//!
//! Deadlines live in a `BTreeMap` keyed by `(deadline, id)`; registering and cancelling are
//! O(log n), so many thousands of concurrent sleeps are cheap. Before parking, the shard asks for
//! the nearest deadline and bounds its wait in the ring by it; every loop turn fires what expired.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::context;

/// The timers of one shard.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Timers {
    fn insert(&mut self, at: Instant, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert((at, id), waker);
        id
    }

    /// Wakes every timer due at `now`; returns how many fired.
    pub(crate) fn fire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
            n += 1;
        }
        n
    }

    /// Time until the nearest deadline (zero if one is already due).
    pub(crate) fn next_wait(&self, now: Instant) -> Option<Duration> {
        self.entries.keys().next().map(|(at, _)| at.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Error returned by [`timeout`] when the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed before the future completed")]
pub struct Elapsed;

/// Completes once `d` has passed. Must be awaited on a shard.
pub fn sleep(d: Duration) -> Sleep {
    Sleep { deadline: Instant::now() + d, key: None }
}

/// Completes at `deadline`. Must be awaited on a shard.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, key: None }
}

/// Future returned by [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = self.key;
        let registered = context::with(|shard| {
            let mut timers = shard.timers.borrow_mut();
            match key.and_then(|k| timers.entries.get_mut(&k)) {
                Some(w) => {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                    key
                }
                None => Some((deadline, timers.insert(deadline, cx.waker().clone()))),
            }
        });
        match registered {
            Some(k) => {
                self.key = k;
                Poll::Pending
            }
            None => panic!("sleep() must be awaited inside a shard task"),
        }
    }
}

impl Sleep {
    fn cancel(&mut self) {
        if let Some(k) = self.key.take() {
            context::with(|shard| shard.timers.borrow_mut().entries.remove(&k));
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Runs `fut` for at most `d`; returns [`Elapsed`] if the deadline came first.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(sleep(d));
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn fires_only_what_is_due_and_reports_the_next_wait() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut t = Timers::default();
        let now = Instant::now();
        assert_eq!(t.next_wait(now), None, "no timers: wait without a deadline");
        for ms in [30, 10, 20] {
            t.insert(now + Duration::from_millis(ms), waker.clone());
        }
        assert_eq!(t.next_wait(now), Some(Duration::from_millis(10)));
        assert_eq!(t.fire(now + Duration::from_millis(15)), 1);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(t.next_wait(now + Duration::from_millis(25)), Some(Duration::ZERO), "an overdue timer");
        assert_eq!(t.fire(now + Duration::from_secs(1)), 2);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn equal_deadlines_are_distinct_entries() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut t = Timers::default();
        let at = Instant::now();
        let a = t.insert(at, waker.clone());
        let b = t.insert(at, waker);
        assert_ne!(a, b);
        assert_eq!(t.len(), 2);
    }
}
