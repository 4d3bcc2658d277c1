//! The source thread (`source_thread()`): the user's passes run on a thread of their own and feed
//! the source task on shard 0 through a ring; the task stamps and deals what arrives as usual.
//!
//! For iterators that block — on I/O, a lock, a token from the consumer — which would otherwise
//! stall the event loop of the shard they run on, and every stage that shard runs with it. The
//! thread sends each pass's start (with its length when the iterator knows it), its items and its
//! end; a panic in the user's code is sent as such and fails the pipeline, as on the shard.
//! When the pipeline stops, the source task drops its end of the ring and the thread stops at
//! its next item.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cancel::wake_me_on_cancel;
use super::source::{Passes, exact_len, source_panicked};
use super::stage::StageCx;
use crate::channel::{Receiver, SharedSender, TryRecvError};
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

/// Starts the thread: pass after pass from `make_pass` into `feed`, until there are no more
/// passes, the user's code panics, or the receiving end is gone.
pub(crate) fn spawn<I, M>(mut make_pass: M, feed: SharedSender<Feed<I::Item>>) -> std::io::Result<JoinHandle<()>>
where
    I: Iterator,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I> + Send + 'static,
{
    std::thread::Builder::new().name("pipeline-source".into()).spawn(move || {
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

/// The source task's side: passes as the thread feeds them.
pub(crate) struct Fed<T: 'static> {
    feed: Receiver<Feed<T>>,
    /// Whether the task is woken when the pipeline is cancelled (it may be waiting on a thread
    /// stuck in the user's iterator, and must still stop).
    wakes_on_cancel: bool,
}

impl<T: Send + 'static> Fed<T> {
    pub(crate) fn new(feed: Receiver<Feed<T>>) -> Self {
        Self { feed, wakes_on_cancel: false }
    }

    /// The next message, publishing the dealt items before waiting for one; `None` at the end
    /// of the feed or once the source is stopped.
    async fn recv(&mut self, cx: &StageCx, publish: &dyn Fn()) -> Option<Feed<T>> {
        if !self.wakes_on_cancel {
            wake_me_on_cancel(cx).await;
            self.wakes_on_cancel = true;
        }
        match self.feed.try_recv() {
            Ok(f) => Some(f),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                publish();
                let mut next = pin!(self.feed.recv());
                poll_fn(|c| if cx.control.source_stopped() { Poll::Ready(None) } else { next.as_mut().poll(c) }).await
            }
        }
    }
}

impl<T: Send + 'static> Passes for Fed<T> {
    type Item = T;

    async fn start(&mut self, epoch: u64, cx: &StageCx) -> bool {
        match self.recv(cx, &|| {}).await {
            Some(Feed::Pass(len)) => {
                cx.control.started_pass(epoch, len);
                true
            }
            Some(Feed::Panicked(msg)) => {
                source_panicked(cx, &msg);
                false
            }
            // The thread sends a pass's items only after its start.
            Some(Feed::Item(_) | Feed::PassEnd) | None => false,
        }
    }

    async fn next(&mut self, cx: &StageCx, _slow: bool, publish: &dyn Fn()) -> Option<T> {
        match self.recv(cx, publish).await? {
            Feed::Item(item) => Some(item),
            Feed::PassEnd | Feed::Pass(_) => None,
            Feed::Panicked(msg) => {
                source_panicked(cx, &msg);
                None
            }
        }
    }
}

/// Joins the source thread if it ends within `patience` (it ends at its next item once the
/// pipeline has stopped); one stuck inside the user's iterator is left to end on its own rather
/// than hang the caller.
pub(crate) fn join(thread: JoinHandle<()>, patience: Duration) {
    let until = Instant::now() + patience;
    while !thread.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}
