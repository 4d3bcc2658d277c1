//! Async ends of one SPSC ring: `send` waits while full (backpressure), `recv` waits while empty
//! and reports the end of stream only after every sent item was received.
//!
//! Both ends are created `Send` ([`SharedSender`], [`SharedReceiver`]) and bound to the thread that
//! will use them by `connect()`. A connected end on a shard batches: the sender publishes its tail
//! when `batch` items are pending or at the end of the shard's loop turn; the receiver tells a
//! blocked sender about freed room at the same points. The cooperative budget is charged at those
//! points too, a batch at a time; an end whose batch used up the budget yields on its next call.
//! Off a shard every operation publishes at once.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::ring::{self, Consumer, Empty, Producer};
use crate::runtime::context::{self, Deferred};

/// Creates a channel holding up to `capacity` items (rounded up to a power of two).
pub fn bounded<T: Send>(capacity: usize) -> (SharedSender<T>, SharedReceiver<T>) {
    let (p, c) = ring::ring(capacity);
    (SharedSender { producer: p }, SharedReceiver { consumer: c })
}

/// Items a connected end lets pile up before it publishes (sender) or releases (receiver) without
/// waiting for the end of the loop turn. The cooperative budget is charged per batch at those same
/// points (a per-item check cost 1.2 ns of 6.1 per handoff), so a batch never exceeds the budget. Measured on the handoff bench: 32 → 8.1 ns/item,
/// 64 → 7.0, 128 → 6.1 (each publish and release pays a `SeqCst` fence that waits for the other
/// core's copy of the index line). 128 also equals the default task budget, so a streaming task
/// yields, and its end-of-turn flush publishes, about when the threshold would fire.
fn batch_for(capacity: usize) -> usize {
    let budget = usize::try_from(context::task_budget()).unwrap_or(usize::MAX);
    (capacity / 8).clamp(1, 128).min(budget.max(1))
}

/// The batching bookkeeping both connected ends share: when to hand items over (the sender
/// publishes, the receiver releases) without waiting for the end of the loop turn, the
/// end-of-turn flush, and the cooperative budget charged a batch at a time.
struct Batching {
    batch: usize,
    on_shard: bool,
    flush_queued: Cell<bool>,
    /// Set when a batch used up the task's budget: the end's next call yields first.
    must_yield: Cell<bool>,
}

impl Batching {
    /// Bookkeeping for an end of a ring of `capacity`, connected on the calling thread.
    fn new(capacity: usize) -> Self {
        Self {
            batch: batch_for(capacity),
            on_shard: context::on_shard(),
            flush_queued: Cell::new(false),
            must_yield: Cell::new(false),
        }
    }

    /// Whether `pending` items must be handed over now rather than at the end of the turn.
    #[inline]
    fn due(&self, pending: usize) -> bool {
        !self.on_shard || pending >= self.batch
    }

    /// Charges `n` handed-over items to the running task's budget.
    #[inline]
    fn charge(&self, n: usize) {
        if !context::consume_budget_n(n as u32) {
            self.must_yield.set(true);
        }
    }

    /// When the last batch used up the budget: wakes the task and returns true (the caller
    /// returns `Pending`).
    #[inline]
    fn yield_if_spent(&self, cx: &mut Context<'_>) -> bool {
        if self.must_yield.get() {
            self.must_yield.set(false);
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }

    /// Whether the end-of-turn flush still has to be queued this turn.
    #[inline]
    fn needs_flush(&self) -> bool {
        !self.flush_queued.get()
    }

    /// Queues `end` for the end-of-turn flush (first item of a batch this turn). The clone is
    /// made here, out of line, to keep it off the per-item path.
    #[inline(never)]
    fn queue_flush<D: Deferred + 'static>(&self, end: &Rc<D>) {
        self.flush_queued.set(true);
        context::defer_flush(end.clone());
    }

    /// The end-of-turn flush ran.
    fn flushed(&self) {
        self.flush_queued.set(false);
    }
}

/// Re-checks of an empty (or full) ring before a task parks, when its shard has nothing else to
/// run. A streaming peer publishes every `batch` items, far sooner than a park and wake round trip
/// (mutex, waker, remote inbox: microseconds). One check is one `pause` (10-140 cycles, by CPU)
/// plus a load, so the spin stays in the low microseconds when the peer is idle.
const SPIN_CHECKS: u32 = 32;

/// Spins while `ready` is false, at most [`SPIN_CHECKS`] times, only while the shard has nothing
/// else to run and spinning is allowed (shards do not share CPUs).
#[inline]
fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    if !context::may_spin() {
        return false;
    }
    for _ in 0..SPIN_CHECKS {
        std::hint::spin_loop();
        if ready() {
            return true;
        }
    }
    false
}

/// The receiver was dropped; the item is handed back.
#[derive(PartialEq, Eq, thiserror::Error)]
#[error("the receiving end of the channel is gone")]
pub struct SendError<T>(pub T);

impl<T> std::fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendError(..)")
    }
}

/// Why [`Sender::try_send`] did not send; the item is handed back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<T> {
    /// The ring is full now.
    #[error("the channel is full")]
    Full(T),
    /// The receiver was dropped.
    #[error("the receiving end of the channel is gone")]
    Disconnected(T),
}

impl<T> std::fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

/// Why [`Receiver::try_recv`] returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is published now.
    #[error("the channel is empty")]
    Empty,
    /// The sender is gone and every item was received.
    #[error("the channel is closed and drained")]
    Disconnected,
}

/// The sending end before it is bound to a thread. `Send`: move it to the shard that will send.
#[derive(Debug)]
pub struct SharedSender<T> {
    producer: Producer<T>,
}

/// The receiving end before it is bound to a thread.
#[derive(Debug)]
pub struct SharedReceiver<T> {
    consumer: Consumer<T>,
}

impl<T: Send + 'static> SharedSender<T> {
    /// Binds the sender to the calling thread (a shard, for batched publication).
    pub fn connect(self) -> Sender<T> {
        let batching = Batching::new(self.producer.capacity());
        Sender { inner: Rc::new(SenderInner { producer: RefCell::new(self.producer), batching }) }
    }
}

impl<T: Send + 'static> SharedReceiver<T> {
    /// Binds the receiver to the calling thread.
    pub fn connect(self) -> Receiver<T> {
        let batching = Batching::new(self.consumer.capacity());
        Receiver { inner: Rc::new(ReceiverInner { consumer: RefCell::new(self.consumer), batching }) }
    }
}

impl<T: Send> SharedReceiver<T> {
    /// Polls for one item without binding the end to a thread: for a consumer that is not a
    /// shard task and must stay `Send` (a pipeline's user-facing end). Taken slots go back to the
    /// sender an eighth of the ring at a time, and always before this end waits (so a sender
    /// waiting for room is never left waiting on slots already taken). `Ready(None)` is the end
    /// of the stream; `Pending` registers `cx`'s waker, which the sender wakes when it publishes.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let c = &mut self.consumer;
        let got = match c.try_pop() {
            Err(Empty::Now) => {
                release_room(c);
                park_or_take(c, cx, &mut Consumer::try_pop)
            }
            other => other,
        };
        match got {
            Ok(v) => {
                if c.unreleased() >= (c.capacity() / 8).max(1) {
                    release_room(c);
                }
                Poll::Ready(Some(v))
            }
            Err(Empty::Closed) => Poll::Ready(None),
            Err(Empty::Now) => Poll::Pending,
        }
    }
}

struct SenderInner<T> {
    producer: RefCell<Producer<T>>,
    batching: Batching,
}

impl<T> SenderInner<T> {
    fn publish(&self, p: &mut Producer<T>) {
        let n = p.unpublished();
        if p.publish() {
            p.shared.recv_wait.notify();
            // A traced shard marks each batch it hands to another ring (a no-op otherwise).
            context::trace(|b| b.instant("handoff", std::time::Instant::now(), n as u64));
        }
    }
}

impl<T: 'static> Deferred for SenderInner<T> {
    fn flush(&self) {
        self.batching.flushed();
        self.publish(&mut self.producer.borrow_mut());
    }
}

/// Future of [`Sender::send`]: holds the item until the ring takes it.
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T: 'static> {
    sender: &'a Sender<T>,
    value: Option<T>,
}

// The item is moved in and out by value and never pinned, so the future may move freely.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture").field("pending", &self.value.is_some()).finish()
    }
}

impl<T: 'static> std::future::Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.sender.poll_send(cx, &mut this.value)
    }
}

/// The sending end, bound to one thread (`!Send`).
pub struct Sender<T: 'static> {
    inner: Rc<SenderInner<T>>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("batch", &self.inner.batching.batch).finish_non_exhaustive()
    }
}

impl<T: 'static> Sender<T> {
    /// Sends `value`, waiting while the ring is full. Errors (handing the value back) only if the
    /// receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> SendFuture<'_, T> {
        SendFuture { sender: self, value: Some(value) }
    }

    #[inline]
    fn poll_send(&self, cx: &mut Context<'_>, slot: &mut Option<T>) -> Poll<Result<(), SendError<T>>> {
        let mut p = self.inner.producer.borrow_mut();
        let value = slot.take().expect("send polled after completion");
        if p.is_consumer_gone() {
            return Poll::Ready(Err(SendError(value)));
        }
        if self.inner.batching.yield_if_spent(cx) {
            *slot = Some(value);
            return Poll::Pending;
        }
        match p.try_push(value) {
            Ok(()) => {
                self.after_push(&mut p);
                Poll::Ready(Ok(()))
            }
            Err(value) => {
                drop(p);
                self.poll_send_full(cx, slot, value)
            }
        }
    }

    /// The ring was full: publish what is batched, spin briefly, else park until there is room.
    #[cold]
    #[inline(never)]
    fn poll_send_full(&self, cx: &mut Context<'_>, slot: &mut Option<T>, value: T) -> Poll<Result<(), SendError<T>>> {
        let mut p = self.inner.producer.borrow_mut();
        // Let the consumer see everything we batched, then wait for room.
        self.inner.publish(&mut p);
        if spin_until(|| p.has_room() || p.is_consumer_gone()) {
            *slot = Some(value);
            drop(p);
            return self.poll_send(cx, slot);
        }
        p.shared.send_wait.register(cx.waker());
        match p.try_push(value) {
            Ok(()) => {
                p.shared.send_wait.cancel();
                self.after_push(&mut p);
                Poll::Ready(Ok(()))
            }
            Err(value) if p.is_consumer_gone() => {
                p.shared.send_wait.cancel();
                Poll::Ready(Err(SendError(value)))
            }
            Err(value) => {
                *slot = Some(value);
                Poll::Pending
            }
        }
    }

    #[inline(always)]
    fn after_push(&self, p: &mut Producer<T>) {
        let batching = &self.inner.batching;
        let pending = p.unpublished();
        if batching.due(pending) {
            self.publish_batch(p, pending);
        } else if batching.needs_flush() {
            batching.queue_flush(&self.inner);
        }
    }

    /// Publishes a full batch and charges it to the task's budget (once per batch: kept out of
    /// the per-item path).
    #[inline(never)]
    fn publish_batch(&self, p: &mut Producer<T>, pending: usize) {
        self.inner.publish(p);
        self.inner.batching.charge(pending);
    }

    /// Sends without waiting.
    #[inline(always)]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut p = self.inner.producer.borrow_mut();
        if p.is_consumer_gone() {
            return Err(TrySendError::Disconnected(value));
        }
        match p.try_push(value) {
            Ok(()) => {
                self.after_push(&mut p);
                Ok(())
            }
            Err(v) => {
                self.inner.publish(&mut p);
                Err(TrySendError::Full(v))
            }
        }
    }

    /// Sends as many of `values` (from the front, in order) as fit now, under one borrow and
    /// one batching check: `Ok` when all went; else the rest stay in `values`, and the error
    /// says why (`Disconnected`: nothing was sent).
    #[inline]
    pub fn try_send_many(&self, values: &mut Vec<T>) -> Result<(), TrySendError<()>> {
        let mut p = self.inner.producer.borrow_mut();
        if p.is_consumer_gone() {
            return Err(TrySendError::Disconnected(()));
        }
        let n = p.push_from(values);
        if values.is_empty() {
            if n > 0 {
                self.after_push(&mut p);
            }
            Ok(())
        } else {
            self.inner.publish(&mut p);
            Err(TrySendError::Full(()))
        }
    }

    /// Publishes every batched item now.
    pub fn flush(&self) {
        self.inner.publish(&mut self.inner.producer.borrow_mut());
    }

    /// Blocks a non-shard thread until `value` is sent.
    pub fn send_blocking(&self, value: T) -> Result<(), SendError<T>> {
        crate::runtime::block_on(self.send(value))
    }

    /// Ring capacity in items.
    pub fn capacity(&self) -> usize {
        self.inner.producer.borrow().capacity()
    }

    /// Items sent and not yet received (a fresh look at the receiver's position).
    pub(crate) fn queued(&self) -> usize {
        self.inner.producer.borrow_mut().queued()
    }
}

struct ReceiverInner<T> {
    consumer: RefCell<Consumer<T>>,
    batching: Batching,
}

/// Hands taken slots back and wakes a sender waiting for room.
fn release_room<T>(c: &mut Consumer<T>) {
    if c.release() {
        c.shared.send_wait.notify();
    }
}

/// The receiver's side of the doorbell protocol on an empty ring: register the task's waker,
/// then take again (an item published in between is seen, or its sender sees the waker).
fn park_or_take<T, R>(
    c: &mut Consumer<T>,
    cx: &mut Context<'_>,
    take: &mut impl FnMut(&mut Consumer<T>) -> Result<R, Empty>,
) -> Result<R, Empty> {
    c.shared.recv_wait.register(cx.waker());
    let again = take(c);
    if !matches!(again, Err(Empty::Now)) {
        c.shared.recv_wait.cancel();
    }
    again
}

impl<T: 'static> Deferred for ReceiverInner<T> {
    fn flush(&self) {
        self.batching.flushed();
        release_room(&mut self.consumer.borrow_mut());
    }
}

/// Future of [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct RecvFuture<'a, T: 'static> {
    receiver: &'a Receiver<T>,
}

impl<T: 'static> std::future::Future for RecvFuture<'_, T> {
    type Output = Option<T>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let rx = self.receiver;
        if rx.inner.batching.yield_if_spent(cx) {
            return Poll::Pending;
        }
        rx.poll_recv_unbudgeted(cx, true)
    }
}

/// The receiving end, bound to one thread (`!Send`).
pub struct Receiver<T: 'static> {
    inner: Rc<ReceiverInner<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("batch", &self.inner.batching.batch).finish_non_exhaustive()
    }
}

impl<T: 'static> Receiver<T> {
    /// Receives the next item; `None` once the sender is gone and every item was received.
    #[inline]
    pub fn recv(&self) -> RecvFuture<'_, T> {
        RecvFuture { receiver: self }
    }

    /// Polls for one item; `spin` allows a short spin before parking (the mesh polls several
    /// rings in turn and must not spin on each).
    #[inline]
    pub(crate) fn poll_recv_unbudgeted(&self, cx: &mut Context<'_>, spin: bool) -> Poll<Option<T>> {
        self.poll_take(cx, spin, Consumer::try_pop)
    }

    /// Receives every published item (up to `max`) into `buf` with one index update; waits while
    /// empty. Returns how many were added; 0 means the channel is closed and drained.
    pub async fn recv_many(&self, buf: &mut Vec<T>, max: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, max)).await
    }

    /// Poll form of [`Receiver::recv_many`], for callers that wait on several things at once.
    pub(crate) fn poll_recv_many(&self, cx: &mut Context<'_>, buf: &mut Vec<T>, max: usize) -> Poll<usize> {
        if self.inner.batching.yield_if_spent(cx) {
            return Poll::Pending;
        }
        self.poll_take(cx, true, |c| c.pop_batch(max.max(1), |v| buf.push(v))).map(|n| n.unwrap_or(0))
    }

    /// The receive protocol shared by `recv` and `recv_many`: take; on empty, hand freed slots
    /// back, spin briefly if allowed, then park the task (register, re-check, `Pending`).
    /// `Ready(None)` is the end of the stream.
    #[inline]
    fn poll_take<R>(
        &self,
        cx: &mut Context<'_>,
        spin: bool,
        mut take: impl FnMut(&mut Consumer<T>) -> Result<R, Empty>,
    ) -> Poll<Option<R>> {
        let mut c = self.inner.consumer.borrow_mut();
        let got = match take(&mut c) {
            Err(Empty::Now) => self.wait_for_items(&mut c, cx, spin, &mut take),
            other => other,
        };
        match got {
            Ok(v) => {
                self.after_pop(&mut c);
                Poll::Ready(Some(v))
            }
            Err(Empty::Closed) => Poll::Ready(None),
            Err(Empty::Now) => Poll::Pending,
        }
    }

    /// The ring was empty: hand freed slots back, spin briefly if allowed, else register the
    /// task's waker and re-check (the doorbell protocol). Kept out of the per-item path.
    #[cold]
    #[inline(never)]
    fn wait_for_items<R>(
        &self,
        c: &mut Consumer<T>,
        cx: &mut Context<'_>,
        spin: bool,
        take: &mut impl FnMut(&mut Consumer<T>) -> Result<R, Empty>,
    ) -> Result<R, Empty> {
        release_room(c);
        if spin && spin_until(|| c.len() > 0 || c.is_producer_gone()) {
            return take(c);
        }
        park_or_take(c, cx, take)
    }

    #[inline]
    fn after_pop(&self, c: &mut Consumer<T>) {
        let batching = &self.inner.batching;
        let taken = c.unreleased();
        if batching.due(taken) {
            self.release_batch(c, taken);
        } else if batching.needs_flush() {
            batching.queue_flush(&self.inner);
        }
    }

    /// Releases a full batch of slots and charges it to the task's budget (once per batch).
    #[inline(never)]
    fn release_batch(&self, c: &mut Consumer<T>, taken: usize) {
        release_room(c);
        self.inner.batching.charge(taken);
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut c = self.inner.consumer.borrow_mut();
        match c.try_pop() {
            Ok(v) => {
                self.after_pop(&mut c);
                Ok(v)
            }
            Err(Empty::Now) => Err(TryRecvError::Empty),
            Err(Empty::Closed) => Err(TryRecvError::Disconnected),
        }
    }

    /// Blocks a non-shard thread until an item arrives or the channel ends.
    pub fn recv_blocking(&self) -> Option<T> {
        crate::runtime::block_on(self.recv())
    }

    /// Published items waiting to be received.
    pub fn len(&self) -> usize {
        self.inner.consumer.borrow_mut().len()
    }

    /// True when no published item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the sender is gone (items may remain to be received).
    pub fn is_sender_gone(&self) -> bool {
        self.inner.consumer.borrow().is_producer_gone()
    }
}
