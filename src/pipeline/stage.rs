//! The tasks that run a stage on one shard, and what they share: inputs, accounting, emission.
//!
//! Every stage replica is one worker task reading its input queue in batches. An inline op
//! (`map`, `pipe`, `pipe_iter`, and `pipe_blocking` on a shard) runs inside the worker; an async
//! op runs as one task per item, at most the stage's per-shard concurrency at a time, and in
//! input order when the stage is `ordered`. Each received envelope leaves the stage as outputs,
//! a filter, a failure, or a discard (after `stop()` or a failure limit), and is counted so.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use super::cancel::{CancelSet, guarded, wake_me_on_cancel};
use super::control::Control;
use super::envelope::{Envelope, Msg, Stamps};
use super::exchange::{Merge, PollRing};
use super::hook::{self, Hook};
use super::queue::{LocalReceiver, LocalSender};
use super::report::StageStats;
use crate::channel::Receiver;
use crate::runtime::{JoinHandle, context, spawn_local, task_panic_message, yield_now};
use crate::stats::now_ns;

/// Envelopes a worker takes from its input per batch.
pub(crate) const BATCH: usize = 64;

/// Inline ops are timed on one call in this many (two clock reads cost ~40 ns here, more than a
/// cheap op itself); blocking and async ops are timed on every call.
pub(crate) const TIME_ONE_IN: u64 = 16;

/// Where a stage replica reads from: the queue of the stage before it on this shard, one ring
/// (the source's deal), several rings merged (a boundary between shard sets), or the outputs of
/// `path_variants`' paths merged.
pub(crate) enum Inbound<T: 'static> {
    Local(LocalReceiver<Msg<T>>),
    Ring(Receiver<Msg<T>>),
    Merge(Merge<Receiver<Msg<T>>>),
    Join(Box<Merge<Inbound<T>>>),
}

impl<T: Send + 'static> PollRing<Msg<T>> for Inbound<T> {
    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Msg<T>>> {
        match self {
            Inbound::Local(r) => r.poll_recv(cx),
            Inbound::Ring(r) => r.poll_next(cx),
            Inbound::Merge(m) => m.poll_next(cx),
            Inbound::Join(m) => m.poll_next(cx),
        }
    }
}

impl<T: Send + 'static> Inbound<T> {
    fn poll_recv_many(&mut self, cx: &mut std::task::Context<'_>, buf: &mut Vec<Msg<T>>, max: usize) -> Poll<usize> {
        match self {
            Inbound::Local(r) => r.poll_recv_many(cx, buf, max),
            Inbound::Ring(r) => r.poll_recv_many(cx, buf, max),
            Inbound::Merge(m) => poll_merged(|cx| m.poll_next(cx), cx, buf, max),
            Inbound::Join(m) => poll_merged(|cx| m.poll_next(cx), cx, buf, max),
        }
    }

    /// Up to `max` messages into `buf`, waiting while there are none; 0 at the end.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<Msg<T>>, max: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, max)).await
    }
}

/// Up to `max` messages of a merge into `buf`: what is there now, or the first to come.
fn poll_merged<T>(
    mut next: impl FnMut(&mut std::task::Context<'_>) -> Poll<Option<Msg<T>>>,
    cx: &mut std::task::Context<'_>,
    buf: &mut Vec<Msg<T>>,
    max: usize,
) -> Poll<usize> {
    let mut n = 0;
    while n < max {
        match next(cx) {
            Poll::Ready(Some(msg)) => {
                buf.push(msg);
                n += 1;
            }
            Poll::Ready(None) if n == 0 => return Poll::Ready(0),
            Poll::Pending if n == 0 => return Poll::Pending,
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    Poll::Ready(n)
}

/// Awaits `fut`; when it had to wait, passes the time waited to `record`. The clock is read
/// only when the future was not ready at once.
pub(crate) async fn waited<F: Future>(fut: F, record: impl FnOnce(Duration)) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut since = None;
    let out = poll_fn(|cx| {
        let p = fut.as_mut().poll(cx);
        if p.is_pending() {
            since.get_or_insert_with(now_ns);
        }
        p
    })
    .await;
    if let Some(t) = since {
        record(Duration::from_nanos(now_ns().saturating_sub(t)));
    }
    out
}

/// Whether an emission went out at once or had to wait for room (or for the next turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emitted {
    AtOnce,
    AfterWaiting,
}

/// How an op's calls are timed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    Sampled,
    Every,
}

/// One stage replica's identity, counters and the pipeline's shared control.
#[derive(Clone)]
pub(crate) struct StageCx {
    pub(crate) index: usize,
    pub(crate) control: Arc<Control>,
    pub(crate) stats: Rc<RefCell<StageStats>>,
    /// `task_hook`: user code around each op call, if the factory gave this replica one.
    pub(crate) hook: Option<Hook>,
}

impl StageCx {
    pub(crate) fn received(&self, n: usize) {
        self.stats.borrow_mut().received += n as u64;
        self.control.calls(self.index, n);
    }

    /// The next batch of up to [`BATCH`] messages into `buf`, counted as received: `None` at the
    /// end of the input, else how many arrived and whether the stage now discards (cancelled).
    pub(crate) async fn next_batch<T: Send + 'static>(
        &self,
        input: &mut Inbound<T>,
        buf: &mut Vec<Msg<T>>,
    ) -> Option<(usize, bool)> {
        let n = self.recv(input, buf, BATCH).await;
        if n == 0 {
            return None;
        }
        // Counted per batch: markers are rare, so they are counted off instead of items on.
        self.received(n);
        Some((n, self.discarding()))
    }

    /// A batch counted as received held a marker, which is not an item.
    pub(crate) fn unreceived_marker(&self) {
        self.stats.borrow_mut().received -= 1;
    }

    pub(crate) fn discarding(&self) -> bool {
        self.control.discarding(self.index)
    }

    pub(crate) fn discard(&self, units: u64) {
        self.stats.borrow_mut().discarded_units += units;
    }

    pub(crate) fn fail(&self, units: u64, message: String) {
        {
            let mut s = self.stats.borrow_mut();
            s.failures += 1;
            s.failed_units += units;
        }
        self.control.fail(self.index, units, || message);
    }

    pub(crate) fn filtered(&self, units: u64) {
        let mut s = self.stats.borrow_mut();
        s.filtered += 1;
        s.filtered_units += units;
    }

    /// Records one op call's length in nanoseconds.
    pub(crate) fn record_call_ns(&self, ns: u64) {
        self.stats.borrow_mut().task_time.record(ns);
    }

    /// Receives up to `max` messages, counting the time spent waiting as input wait.
    pub(crate) async fn recv<T: Send + 'static>(
        &self,
        input: &mut Inbound<T>,
        buf: &mut Vec<Msg<T>>,
        max: usize,
    ) -> usize {
        waited(input.recv_many(buf, max), |d| self.stats.borrow_mut().input_wait += d).await
    }

    /// Sends one envelope on; a gone receiver (the pipeline is stopping) makes it a discard.
    /// Time spent waiting for room counts as output wait.
    pub(crate) async fn emit<U>(&self, out: &LocalSender<Msg<U>>, env: Envelope<U>) -> Emitted {
        // The common case, room in the queue, without building a future.
        let msg = match out.try_send(Msg::Item(env)) {
            Ok(()) => {
                self.stats.borrow_mut().emitted += 1;
                return Emitted::AtOnce;
            }
            Err((msg, false)) => msg,
            Err((Msg::Item(env), true)) => {
                self.discard(env.units());
                return Emitted::AtOnce;
            }
            Err((_, true)) => return Emitted::AtOnce,
        };
        let sent = waited(out.send(msg), |d| self.stats.borrow_mut().output_wait += d).await;
        match sent {
            Ok(()) => self.stats.borrow_mut().emitted += 1,
            Err(Msg::Item(env)) => self.discard(env.units()),
            Err(_) => {}
        }
        Emitted::AfterWaiting
    }

    /// Sends a run of items (held back while a batch of calls ran) in order, waiting for room
    /// for those that do not fit at once; leaves `run` empty.
    pub(crate) async fn emit_run<U>(&self, out: &LocalSender<Msg<U>>, run: &mut Vec<Msg<U>>) -> Emitted {
        if run.is_empty() {
            return Emitted::AtOnce;
        }
        let n = run.len() as u64;
        let Err(gone) = out.try_send_many(run) else {
            self.stats.borrow_mut().emitted += n;
            return Emitted::AtOnce;
        };
        self.stats.borrow_mut().emitted += n - run.len() as u64;
        let mut how = Emitted::AtOnce;
        for msg in run.drain(..) {
            let Msg::Item(env) = msg else { unreachable!("a run holds items only") };
            if gone {
                self.discard(env.units());
            } else if self.emit(out, env).await == Emitted::AfterWaiting {
                how = Emitted::AfterWaiting;
            }
        }
        how
    }

    /// Sends the outputs of one call, sharing out the input's stamps; no output is a filter.
    async fn emit_all<U>(&self, out: &LocalSender<Msg<U>>, outputs: &mut Vec<U>, stamps: Stamps) -> Emitted {
        match outputs.len() {
            0 => {
                self.filtered(stamps.units());
                Emitted::AtOnce
            }
            1 => {
                let value = outputs.pop().expect("one output");
                self.emit(out, Envelope { value, stamps }).await
            }
            n => {
                let parts = stamps.split(n);
                let mut how = Emitted::AtOnce;
                for (value, stamps) in outputs.drain(..).zip(parts) {
                    if self.emit(out, Envelope { value, stamps }).await == Emitted::AfterWaiting {
                        how = Emitted::AfterWaiting;
                    }
                }
                how
            }
        }
    }

    /// Runs one async op call, timed, with a panic turned into a failure message; the stage's
    /// hook, if any, runs around it.
    async fn call<U>(&self, fut: impl Future<Output = Result<Option<U>, String>>) -> Result<Option<U>, String> {
        let t0 = now_ns();
        if let Some(h) = &self.hook
            && let Err(e) = hook::before(h)
        {
            return Err(e);
        }
        let r = caught(fut).await.and_then(|r| r);
        let elapsed = now_ns().saturating_sub(t0);
        self.record_call_ns(elapsed);
        if let Some(h) = &self.hook {
            hook::after(h, elapsed, r.as_ref().map(|out| usize::from(out.is_some())).map_err(String::as_str));
        }
        r
    }

    /// The end of one op call: outputs, a filter, or a failure.
    async fn settle<U>(&self, out: &LocalSender<Msg<U>>, result: Result<Option<U>, String>, stamps: Stamps) {
        match result {
            Ok(Some(value)) => {
                self.emit(out, Envelope { value, stamps }).await;
            }
            Ok(None) => self.filtered(stamps.units()),
            Err(msg) => self.fail(stamps.units(), msg),
        }
    }
}

/// Charges `n` handled items to the task's cooperative budget and yields when it is spent.
pub(crate) async fn charge(n: usize) {
    if !context::consume_budget_n(u32::try_from(n).unwrap_or(u32::MAX)) {
        yield_now().await;
    }
}

/// Runs `fut`, turning a panic into its message.
pub(crate) async fn caught<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(p) => Poll::Ready(Err(format!("panicked: {}", task_panic_message(&*p)))),
    })
    .await
}

/// Passes a marker on (after everything before it, which the caller has already emitted).
pub(crate) async fn forward_marker<U>(out: &LocalSender<Msg<U>>, marker: Msg<U>) {
    // A gone receiver means the pipeline is stopping: the marker has nobody to tell.
    let _ = out.send(marker).await;
}

/// The worker of an inline op: `apply` pushes the outputs of one input (none filters it) or
/// returns the failure message.
pub(crate) async fn inline_worker<T, U, A>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<U>>,
    apply: A,
    cx: StageCx,
    timing: Timing,
) where
    T: Send + 'static,
    A: Fn(T, &mut Vec<U>) -> Result<(), String>,
{
    let mut buf = Vec::with_capacity(BATCH);
    let mut outputs = Vec::new();
    // One-output calls' items, held until the batch ends (or something must go out after
    // them) and then queued in one go. Nothing downstream on this shard could take them any
    // sooner: it runs only once this task yields. Inputs in `buf` and items here together never
    // exceed a batch, so the in-flight bound is unchanged.
    let mut run = Vec::with_capacity(BATCH);
    let mut calls = 0u64;
    while let Some((n, discarding)) = cx.next_batch(&mut input, &mut buf).await {
        // Calls timed on every call read the clock once each: back to back in a batch, one
        // call's end is the next one's start. Anything that may wait in between starts the
        // chain again.
        let mut chained: Option<u64> = None;
        for msg in buf.drain(..) {
            let Envelope { value, stamps } = match msg {
                Msg::Item(env) => env,
                marker => {
                    cx.unreceived_marker();
                    cx.emit_run(&output, &mut run).await;
                    forward_marker(&output, marker.recast()).await;
                    chained = None;
                    continue;
                }
            };
            if discarding {
                cx.discard(stamps.units());
                continue;
            }
            let t0 = match timing {
                Timing::Every => Some(chained.take().unwrap_or_else(now_ns)),
                // A hook gets every call's time.
                Timing::Sampled => (calls.is_multiple_of(TIME_ONE_IN) || cx.hook.is_some()).then(now_ns),
            };
            calls += 1;
            let r = match cx.hook.as_ref().map(hook::before) {
                Some(Err(e)) => Err(e),
                _ => catch_unwind(AssertUnwindSafe(|| apply(value, &mut outputs)))
                    .unwrap_or_else(|p| Err(format!("panicked: {}", task_panic_message(&*p)))),
            };
            let mut elapsed = 0;
            if let Some(t0) = t0 {
                let end = now_ns();
                elapsed = end.saturating_sub(t0);
                cx.record_call_ns(elapsed);
                if matches!(timing, Timing::Every) {
                    chained = Some(end);
                }
            }
            if let Some(h) = &cx.hook {
                hook::after(h, elapsed, r.as_ref().map(|()| outputs.len()).map_err(String::as_str));
            }
            match r {
                Ok(()) if outputs.len() == 1 => {
                    let value = outputs.pop().expect("one output");
                    run.push(Msg::Item(Envelope { value, stamps }));
                }
                Ok(()) => {
                    let before = cx.emit_run(&output, &mut run).await;
                    let these = cx.emit_all(&output, &mut outputs, stamps).await;
                    if before == Emitted::AfterWaiting || these == Emitted::AfterWaiting {
                        chained = None;
                    }
                }
                Err(msg) => {
                    outputs.clear();
                    cx.fail(stamps.units(), msg);
                }
            }
        }
        cx.emit_run(&output, &mut run).await;
        charge(n).await;
    }
}

/// A count of free task slots with one waiter (the worker).
struct Slots {
    free: Cell<usize>,
    waiter: Cell<Option<Waker>>,
}

impl Slots {
    fn new(n: usize) -> Rc<Self> {
        Rc::new(Slots { free: Cell::new(n), waiter: Cell::new(None) })
    }

    /// Waits until at least `n` slots are free; cancels the calls holding them when the stage is
    /// cancelled meanwhile (they then free their slots at once).
    async fn wait_free(&self, n: usize, stage: &StageCx, cancel: &CancelSet) {
        poll_fn(|cx| {
            if self.free.get() >= n {
                return Poll::Ready(());
            }
            cancel.fire_if_cancelled(stage);
            self.waiter.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    fn release(&self) {
        self.free.set(self.free.get() + 1);
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }
}

/// The worker of an async op in completion order: one task per item, at most `limit` at once;
/// each item task emits its own result. An epoch marker waits for every task started before it.
async fn async_worker<T, U, F, Fut>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<U>>,
    op: Arc<F>,
    limit: usize,
    cx: StageCx,
) where
    T: Send + 'static,
    U: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = Result<Option<U>, String>> + 'static,
{
    let slots = Slots::new(limit);
    let cancel = CancelSet::new();
    wake_me_on_cancel(&cx).await;
    let mut buf = Vec::with_capacity(1);
    loop {
        slots.wait_free(1, &cx, &cancel).await;
        if cx.recv(&mut input, &mut buf, 1).await == 0 {
            break;
        }
        let Envelope { value, stamps } = match buf.pop().expect("one received") {
            Msg::Item(env) => env,
            marker => {
                slots.wait_free(limit, &cx, &cancel).await;
                forward_marker(&output, marker.recast()).await;
                continue;
            }
        };
        cx.received(1);
        if cx.discarding() {
            cx.discard(stamps.units());
            continue;
        }
        slots.free.set(slots.free.get() - 1);
        let (op, cx, out, slots, cancel) = (op.clone(), cx.clone(), output.clone(), slots.clone(), cancel.clone());
        drop(spawn_local(async move {
            match guarded(cancel, cx.call(op(value))).await {
                Some(r) => cx.settle(&out, r, stamps).await,
                None => cx.discard(stamps.units()),
            }
            slots.release();
        }));
    }
    slots.wait_free(limit, &cx, &cancel).await;
}

/// The worker of a task stage, in input order or completion order.
pub(crate) async fn tasks_worker<T, U, F, Fut>(
    input: Inbound<T>,
    output: LocalSender<Msg<U>>,
    op: Arc<F>,
    limit: usize,
    ordered: bool,
    cx: StageCx,
) where
    T: Send + 'static,
    U: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = Result<Option<U>, String>> + 'static,
{
    if ordered {
        ordered_async_worker(input, output, op, limit, cx).await;
    } else {
        async_worker(input, output, op, limit, cx).await;
    }
}

/// What an ordered worker has in flight, in input order.
enum InFlight<U> {
    /// `None` when the call was cancelled.
    Task(JoinHandle<Option<Result<Option<U>, String>>>, Stamps),
    Marker(Msg<U>),
}

/// The worker of an async op in input order: at most `limit` items in flight, results (and
/// markers) emitted in the order their inputs arrived.
async fn ordered_async_worker<T, U, F, Fut>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<U>>,
    op: Arc<F>,
    limit: usize,
    cx: StageCx,
) where
    T: Send + 'static,
    U: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = Result<Option<U>, String>> + 'static,
{
    let mut in_flight: VecDeque<InFlight<U>> = VecDeque::new();
    let mut buf = Vec::with_capacity(1);
    let mut input_open = true;
    let cancel = CancelSet::new();
    wake_me_on_cancel(&cx).await;
    enum Event<U> {
        Received(usize),
        Finished(Option<Result<Option<U>, String>>),
        Marker,
        End,
    }
    loop {
        let event = poll_fn(|c| {
            cancel.fire_if_cancelled(&cx);
            match in_flight.front_mut() {
                Some(InFlight::Marker(_)) => return Poll::Ready(Event::Marker),
                Some(InFlight::Task(task, _)) => {
                    if let Poll::Ready(r) = Pin::new(task).poll(c) {
                        let r = match r {
                            Ok(Some(r)) => Some(r),
                            Ok(None) => None,
                            Err(e) => Some(Err(e.to_string())),
                        };
                        return Poll::Ready(Event::Finished(r));
                    }
                }
                None => {}
            }
            if input_open && in_flight.len() < limit {
                if let Poll::Ready(n) = input.poll_recv_many(c, &mut buf, 1) {
                    return Poll::Ready(Event::Received(n));
                }
            } else if !input_open && in_flight.is_empty() {
                return Poll::Ready(Event::End);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Received(0) => input_open = false,
            Event::Received(_) => match buf.pop().expect("one received") {
                Msg::Item(Envelope { value, stamps }) => {
                    cx.received(1);
                    if cx.discarding() {
                        cx.discard(stamps.units());
                        continue;
                    }
                    let (op, cx, cancel) = (op.clone(), cx.clone(), cancel.clone());
                    let task = spawn_local(async move { guarded(cancel, cx.call(op(value))).await });
                    in_flight.push_back(InFlight::Task(task, stamps));
                }
                Msg::Chunk => in_flight.push_back(InFlight::Marker(Msg::Chunk)),
                Msg::Epoch(e) => in_flight.push_back(InFlight::Marker(Msg::Epoch(e))),
            },
            Event::Finished(r) => {
                let Some(InFlight::Task(_, stamps)) = in_flight.pop_front() else { unreachable!("the front finished") };
                match r {
                    Some(r) => cx.settle(&output, r, stamps).await,
                    None => cx.discard(stamps.units()),
                }
            }
            Event::Marker => {
                let Some(InFlight::Marker(m)) = in_flight.pop_front() else { unreachable!("a marker is in front") };
                forward_marker(&output, m).await;
            }
            Event::End => break,
        }
    }
}
