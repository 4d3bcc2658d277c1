//! The bounded queue between two stages on the same shard: plain `Rc<RefCell>`, no atomics.
//!
//! Many senders (a stage's item tasks) and one receiver (the next stage's worker). `send` waits
//! while the queue is full (backpressure); `recv_many` waits while it is empty and returns 0 once
//! every sender is gone and the queue is drained. Dropping the receiver makes every later send
//! hand its item back, so nothing vanishes unaccounted.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::report::StageStats;
use crate::stats::now_ns;

/// How long a queue held items, written into its producing stage's stats when the queue goes.
/// The clock is read only when the queue turns empty or non-empty: a stage that keeps up drains
/// a batch at a time, so that is about twice per batch, not per item; a stage fed one item at a
/// time (a slow op upstream) reads it twice per item, so it is the cheap stamp clock.
/// Times are nanoseconds on `stats::now_ns`.
struct Occupancy {
    stats: Rc<RefCell<StageStats>>,
    created: u64,
    nonempty_since: Option<u64>,
    nonempty: u64,
}

impl Drop for Occupancy {
    fn drop(&mut self) {
        let now = now_ns();
        let open = self.nonempty_since.map_or(0, |t| now.saturating_sub(t));
        let mut s = self.stats.borrow_mut();
        s.output_nonempty += Duration::from_nanos(self.nonempty + open);
        s.output_lifetime += Duration::from_nanos(now.saturating_sub(self.created));
    }
}

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receiver_alive: bool,
    recv_waker: Option<Waker>,
    send_wakers: Vec<Waker>,
    occupancy: Option<Occupancy>,
}

/// Creates a queue holding at most `capacity` items (at least 1); with `stats`, its occupancy
/// is added to them when the queue goes.
pub(crate) fn local_queue<T>(
    capacity: usize,
    stats: Option<&Rc<RefCell<StageStats>>>,
) -> (LocalSender<T>, LocalReceiver<T>) {
    let capacity = capacity.max(1);
    let state = Rc::new(RefCell::new(State {
        items: VecDeque::with_capacity(capacity),
        capacity,
        senders: 1,
        receiver_alive: true,
        recv_waker: None,
        send_wakers: Vec::new(),
        occupancy: stats.map(|stats| Occupancy {
            stats: stats.clone(),
            created: now_ns(),
            nonempty_since: None,
            nonempty: 0,
        }),
    }));
    (LocalSender { state: state.clone() }, LocalReceiver { state })
}

/// A sending end; clone it for each task that sends.
pub(crate) struct LocalSender<T> {
    state: Rc<RefCell<State<T>>>,
}

impl<T> Clone for LocalSender<T> {
    fn clone(&self) -> Self {
        self.state.borrow_mut().senders += 1;
        Self { state: self.state.clone() }
    }
}

impl<T> Drop for LocalSender<T> {
    fn drop(&mut self) {
        let mut s = self.state.borrow_mut();
        s.senders -= 1;
        if s.senders == 0
            && let Some(w) = s.recv_waker.take()
        {
            drop(s);
            w.wake();
        }
    }
}

impl<T> LocalSender<T> {
    /// Sends `value`, waiting while the queue is full. Hands it back if the receiver is gone.
    pub(crate) async fn send(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        poll_fn(|cx| self.poll_send(cx, &mut value)).await
    }

    /// Sends at once if there is room: `Ok`, or the value back with whether the receiver is
    /// gone (`true`) or the queue is full (`false`).
    #[inline]
    pub(crate) fn try_send(&self, value: T) -> Result<(), (T, bool)> {
        let mut s = self.state.borrow_mut();
        if !s.receiver_alive {
            return Err((value, true));
        }
        if s.items.len() >= s.capacity {
            return Err((value, false));
        }
        s.items.push_back(value);
        Self::pushed(s, 1);
        Ok(())
    }

    /// Moves as many of `values` (from the front, in order) as there is room for: `Ok` when all
    /// went, else `Err` with the rest left in `values` and whether the receiver is gone
    /// (`true`: nothing was moved) or the queue is full (`false`). One borrow and at most one
    /// wake for the whole run.
    pub(crate) fn try_send_many(&self, values: &mut Vec<T>) -> Result<(), bool> {
        let mut s = self.state.borrow_mut();
        if !s.receiver_alive {
            return Err(true);
        }
        let n = values.len().min(s.capacity.saturating_sub(s.items.len()));
        s.items.extend(values.drain(..n));
        if n > 0 {
            Self::pushed(s, n);
        }
        if values.is_empty() { Ok(()) } else { Err(false) }
    }

    /// After `n` values went into the queue: starts its non-empty time if they were the first,
    /// and wakes the receiver if it waits.
    #[inline]
    fn pushed(mut s: std::cell::RefMut<'_, State<T>>, n: usize) {
        if s.items.len() == n
            && let Some(o) = &mut s.occupancy
        {
            o.nonempty_since = Some(now_ns());
        }
        if let Some(w) = s.recv_waker.take() {
            drop(s);
            w.wake();
        }
    }

    fn poll_send(&self, cx: &mut Context<'_>, value: &mut Option<T>) -> Poll<Result<(), T>> {
        let v = value.take().expect("polled after completion");
        match self.try_send(v) {
            Ok(()) => Poll::Ready(Ok(())),
            Err((v, true)) => Poll::Ready(Err(v)),
            Err((v, false)) => {
                self.state.borrow_mut().send_wakers.push(cx.waker().clone());
                *value = Some(v);
                Poll::Pending
            }
        }
    }
}

/// The receiving end.
pub(crate) struct LocalReceiver<T> {
    state: Rc<RefCell<State<T>>>,
}

impl<T> Drop for LocalReceiver<T> {
    fn drop(&mut self) {
        let wakers = {
            let mut s = self.state.borrow_mut();
            s.receiver_alive = false;
            std::mem::take(&mut s.send_wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<T> LocalReceiver<T> {
    /// Moves up to `max` items into `buf`, waiting while empty; 0 means closed and drained.
    pub(crate) fn poll_recv_many(&self, cx: &mut Context<'_>, buf: &mut Vec<T>, max: usize) -> Poll<usize> {
        self.poll_take(cx, max, |items| buf.extend(items))
    }

    /// One item, waiting while empty; `None` means closed and drained.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut item = None;
        self.poll_take(cx, 1, |mut items| item = items.next()).map(|_| item)
    }

    /// Hands up to `max` items to `take`, waiting while empty; 0 means closed and drained.
    fn poll_take(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        take: impl FnOnce(std::collections::vec_deque::Drain<'_, T>),
    ) -> Poll<usize> {
        let mut s = self.state.borrow_mut();
        if s.items.is_empty() {
            if s.senders == 0 {
                return Poll::Ready(0);
            }
            s.recv_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.items.len().min(max.max(1));
        take(s.items.drain(..n));
        if s.items.is_empty()
            && let Some(o) = &mut s.occupancy
            && let Some(since) = o.nonempty_since.take()
        {
            o.nonempty += now_ns().saturating_sub(since);
        }
        // Every waiting sender re-checks; those that find no room wait again.
        let wakers = std::mem::take(&mut s.send_wakers);
        drop(s);
        wakers.into_iter().for_each(Waker::wake);
        Poll::Ready(n)
    }

    /// Items queued now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.borrow().items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll_many<T>(rx: &LocalReceiver<T>, buf: &mut Vec<T>) -> Poll<usize> {
        rx.poll_recv_many(&mut Context::from_waker(Waker::noop()), buf, usize::MAX)
    }

    #[test]
    fn a_full_queue_makes_the_sender_wait_and_hands_nothing_back() {
        let (tx, rx) = local_queue::<u32>(2, None);
        let cx = &mut Context::from_waker(Waker::noop());
        for i in 0..2 {
            assert!(matches!(tx.poll_send(cx, &mut Some(i)), Poll::Ready(Ok(()))));
        }
        let mut third = Some(2);
        assert!(tx.poll_send(cx, &mut third).is_pending());
        assert_eq!(third, Some(2), "a waiting send keeps its item");
        let mut buf = Vec::new();
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(2));
        assert!(matches!(tx.poll_send(cx, &mut third), Poll::Ready(Ok(()))));
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn the_end_comes_after_the_last_item_and_the_last_sender() {
        let (tx, rx) = local_queue::<u32>(4, None);
        let tx2 = tx.clone();
        let cx = &mut Context::from_waker(Waker::noop());
        assert!(tx.poll_send(cx, &mut Some(7)).is_ready());
        drop(tx);
        let mut buf = Vec::new();
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(1));
        assert!(poll_many(&rx, &mut buf).is_pending(), "one sender is still there");
        drop(tx2);
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(0));
        assert_eq!(buf, vec![7]);
    }

    #[test]
    fn a_run_fills_the_room_in_order_and_keeps_the_rest() {
        let (tx, rx) = local_queue::<u32>(3, None);
        let mut run = vec![1, 2, 3, 4, 5];
        assert_eq!(tx.try_send_many(&mut run), Err(false), "two do not fit");
        assert_eq!(run, vec![4, 5], "the rest stays, in order");
        let mut buf = Vec::new();
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(3));
        assert_eq!(tx.try_send_many(&mut run), Ok(()));
        assert!(run.is_empty());
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(2));
        assert_eq!(buf, vec![1, 2, 3, 4, 5]);
        drop(rx);
        let mut late = vec![6];
        assert_eq!(tx.try_send_many(&mut late), Err(true), "the receiver is gone");
        assert_eq!(late, vec![6], "nothing is moved then");
    }

    #[test]
    fn a_run_wakes_a_waiting_receiver() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (tx, rx) = local_queue::<u32>(4, None);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut buf = Vec::new();
        assert!(rx.poll_recv_many(&mut Context::from_waker(&waker), &mut buf, 8).is_pending());
        assert_eq!(tx.try_send_many(&mut vec![1, 2]), Ok(()));
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "one wake for the run");
    }

    #[test]
    fn a_send_after_the_receiver_left_hands_the_item_back() {
        let (tx, rx) = local_queue::<u32>(4, None);
        drop(rx);
        let cx = &mut Context::from_waker(Waker::noop());
        assert!(matches!(tx.poll_send(cx, &mut Some(3)), Poll::Ready(Err(3))));
    }

    #[test]
    fn occupancy_counts_the_time_the_queue_held_items() {
        let stats = Rc::new(RefCell::new(StageStats::default()));
        let (tx, rx) = local_queue::<u32>(4, Some(&stats));
        let cx = &mut Context::from_waker(Waker::noop());
        std::thread::sleep(Duration::from_millis(20));
        assert!(tx.poll_send(cx, &mut Some(1)).is_ready());
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = Vec::new();
        assert_eq!(poll_many(&rx, &mut buf), Poll::Ready(1));
        drop((tx, rx));
        let s = stats.borrow();
        // Lower bounds only (a sleep lasts at least as long as asked): it held the item for
        // 20 ms or more, and lived 20 ms or more longer than that.
        assert!(s.output_nonempty >= Duration::from_millis(20), "{:?}", s.output_nonempty);
        assert!(s.output_lifetime >= s.output_nonempty + Duration::from_millis(20), "{:?}", s.output_lifetime);
        assert!(s.occupancy().is_some_and(|o| o > 0.0 && o < 1.0));
    }
}
