//! The source thread (`source_thread()`): the user's passes run on a thread of their own and feed
//! the source task on shard 0 through a ring; the task stamps and deals what arrives as usual.
//!
//! For iterators that block — on I/O, a lock, a token from the consumer — which would otherwise
//! stall the event loop of the shard they run on, and every stage that shard runs with it. The
//! thread sends each pass's start (with its length when the iterator knows it), its items and its
//! end; a panic in the user's code is sent as such and fails the pipeline, as on the shard.
//! When the pipeline stops, the source task drops its end of the ring and the thread stops at
//! its next item.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cancel::wake_me_on_cancel;
use super::exchange::PollRing;
use super::source::{Passes, exact_len, source_panicked};
use super::stage::StageCx;
use crate::channel::{Receiver, SharedSender};
use crate::runtime::task_panic_message;

/// What the thread sends.
pub(crate) enum Feed<T> {
    /// A pass begins, of this many items if its iterator knew.
    Pass(Option<u64>),
    Item(T),
    /// The pass ended.
    PassEnd,
    /// The user's code panicked (the thread has stopped).
    Panicked(String),
}

/// Starts a thread named `name`: pass after pass from `make_pass` into `feed`, until there are
/// no more passes, the user's code panics, or the receiving end is gone.
pub(crate) fn spawn<I, M>(
    name: String,
    mut make_pass: M,
    feed: SharedSender<Feed<I::Item>>,
) -> std::io::Result<JoinHandle<()>>
where
    I: Iterator,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I> + Send + 'static,
{
    std::thread::Builder::new().name(name).spawn(move || {
        let feed = feed.connect();
        let panicked = |p: Box<dyn std::any::Any + Send>| Feed::Panicked(task_panic_message(&*p));
        for epoch in 0.. {
            let mut items = match catch_unwind(AssertUnwindSafe(|| make_pass(epoch))) {
                Ok(Some(items)) => items,
                Ok(None) => return,
                Err(p) => {
                    let _ = feed.send_blocking(panicked(p));
                    return;
                }
            };
            if feed.send_blocking(Feed::Pass(exact_len(&items))).is_err() {
                return;
            }
            loop {
                let next = match catch_unwind(AssertUnwindSafe(|| items.next())) {
                    Ok(Some(item)) => Feed::Item(item),
                    Ok(None) => break,
                    Err(p) => {
                        let _ = feed.send_blocking(panicked(p));
                        return;
                    }
                };
                if feed.send_blocking(next).is_err() {
                    return;
                }
            }
            if feed.send_blocking(Feed::PassEnd).is_err() {
                return;
            }
        }
    })
}

/// The source task's side: passes as the threads feed them. With several threads
/// ([`merge_sources`](super::merge_sources)) a pass is theirs together: it starts once each has
/// started its own, yields items in arrival order, and ends when the last one's ends.
pub(crate) struct Fed<T: 'static> {
    /// One ring per thread; `None` once that thread has stopped.
    feeds: Vec<Option<Receiver<Feed<T>>>>,
    /// The threads read from now: those yet to start the pass while it starts, then those
    /// still in it.
    listen: Vec<bool>,
    /// Where the next look for a message starts (fairness among the threads).
    turn: usize,
    /// Whether the task is woken when the pipeline is cancelled (it may be waiting on a thread
    /// stuck in the user's iterator, and must still stop).
    wakes_on_cancel: bool,
}

impl<T: Send + 'static> Fed<T> {
    pub(crate) fn new(feeds: Vec<Receiver<Feed<T>>>) -> Self {
        let n = feeds.len();
        Self { feeds: feeds.into_iter().map(Some).collect(), listen: vec![false; n], turn: 0, wakes_on_cancel: false }
    }

    /// A message from a thread listened to: `(thread, Some(message))`, or `(thread, None)`
    /// when that thread has stopped.
    fn poll_any(&mut self, c: &mut Context<'_>) -> Poll<(usize, Option<Feed<T>>)> {
        let n = self.feeds.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            if !self.listen[i] {
                continue;
            }
            let Some(feed) = &mut self.feeds[i] else { return Poll::Ready((i, None)) };
            if let Poll::Ready(m) = feed.poll_next(c) {
                self.turn = i + 1;
                return Poll::Ready((i, m));
            }
        }
        Poll::Pending
    }

    /// The next message from a thread listened to, publishing the dealt items before waiting
    /// for one; `None` once the source is stopped.
    async fn recv(&mut self, cx: &StageCx, publish: &dyn Fn()) -> Option<(usize, Option<Feed<T>>)> {
        if !self.wakes_on_cancel {
            wake_me_on_cancel(cx).await;
            self.wakes_on_cancel = true;
        }
        // Without waiting first (a no-op waker: if nothing is ready, the real one re-polls).
        if let Poll::Ready(got) = self.poll_any(&mut Context::from_waker(Waker::noop())) {
            return Some(got);
        }
        publish();
        poll_fn(|c| if cx.control.source_stopped() { Poll::Ready(None) } else { self.poll_any(c).map(Some) }).await
    }
}

impl<T: Send + 'static> Passes for Fed<T> {
    type Item = T;

    const NEVER_WAITS: bool = false;

    async fn start(&mut self, epoch: u64, cx: &StageCx) -> bool {
        // Every live thread starts the pass, or stops (its passes are over).
        let mut in_pass: Vec<bool> = vec![false; self.feeds.len()];
        let mut len = Some(0u64);
        self.listen = self.feeds.iter().map(Option::is_some).collect();
        while self.listen.contains(&true) {
            let Some((i, m)) = self.recv(cx, &|| {}).await else { return false };
            self.listen[i] = false;
            match m {
                Some(Feed::Pass(n)) => {
                    in_pass[i] = true;
                    len = len.zip(n).and_then(|(a, b)| a.checked_add(b));
                }
                Some(Feed::Panicked(msg)) => {
                    source_panicked(cx, &msg);
                    return false;
                }
                // A thread sends a pass's items only after its start; a stopped one is done.
                Some(Feed::Item(_) | Feed::PassEnd) | None => self.feeds[i] = None,
            }
        }
        self.listen = in_pass;
        if !self.listen.contains(&true) {
            return false;
        }
        cx.control.started_pass(epoch, len);
        true
    }

    async fn next(&mut self, cx: &StageCx, _slow: bool, publish: &dyn Fn()) -> Option<T> {
        while self.listen.contains(&true) {
            let (i, m) = self.recv(cx, publish).await?;
            match m {
                Some(Feed::Item(item)) => return Some(item),
                Some(Feed::PassEnd | Feed::Pass(_)) => self.listen[i] = false,
                Some(Feed::Panicked(msg)) => {
                    source_panicked(cx, &msg);
                    return None;
                }
                None => {
                    self.feeds[i] = None;
                    self.listen[i] = false;
                }
            }
        }
        None
    }
}

/// Joins the source threads that end within `patience` (each ends at its next item once the
/// pipeline has stopped); one stuck inside the user's iterator is left to end on its own rather
/// than hang the caller.
pub(crate) fn join(threads: Vec<JoinHandle<()>>, patience: Duration) {
    let until = Instant::now() + patience;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in threads.into_iter().filter(JoinHandle::is_finished) {
        let _ = t.join();
    }
}
