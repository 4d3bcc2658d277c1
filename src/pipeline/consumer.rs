//! The user's end of a running pipeline: receive with a timeout or iterate, stop, and read the
//! final report.
//!
//! The consumer is a plain thread (a training loop). Each shard's last stage feeds its own ring
//! to it; the consumer takes from the rings in turn and parks (with `park_timeout`) only when
//! all are empty: a shard that publishes into an empty ring wakes it, through the shard on the
//! consumer's CPU when that one is busy (`runtime/wake_relay.rs`). When every ring has ended, the
//! shards are joined; the report is assembled when first asked for.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::build::{Hosted, Placement};
use super::control::Control;
use super::envelope::{Envelope, Msg};
use super::exchange::Merge;
use super::offload::Offload;
use super::progress::{Assembler, ConsumerCounts, Ending, LazyReport, Reporter, Snapshots};
use super::report::{FailureLimitExceeded, Report, StageStats};
use super::source_thread;
use crate::channel::SharedReceiver;
use crate::runtime::JoinHandle;
use crate::runtime::block_on::ThreadWaker;
use crate::runtime::wake_relay::SameCpuWaker;

/// Where the consumer is in the current epoch ([`Pipeline::progress`]): for progress bars and
/// logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The epoch being consumed (0 first).
    pub epoch: u64,
    /// Source items delivered in it so far (a batch counts every item it holds).
    pub delivered: u64,
    /// Source items in the epoch's pass, if the source's iterator said (and has started it).
    pub len: Option<u64>,
}

impl Progress {
    /// `delivered / len`, if the length is known.
    pub fn fraction(&self) -> Option<f64> {
        self.len.map(|n| if n == 0 { 1.0 } else { self.delivered as f64 / n as f64 })
    }
}

/// Why [`Pipeline::recv_timeout`] returned no item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived within the timeout; the pipeline is still running.
    #[error("no item within the timeout; the pipeline is still running")]
    Timeout,
    /// Every item was delivered (or the pipeline was stopped); nothing more will come.
    #[error("the pipeline has ended")]
    Ended,
    /// The pipeline ended because a failure limit was exceeded (returned once; `Ended` after).
    #[error(transparent)]
    Failed(FailureLimitExceeded),
}

enum State {
    Running,
    Ended {
        report: Box<LazyReport>,
        error: Option<FailureLimitExceeded>,
        error_returned: bool,
    },
    /// `finish()` took the report; only the drop is left.
    Finished,
}

/// How long ending a pipeline waits for its source threads, which may be inside the user's
/// iterators (one is left to end on its own after that, at its next item).
const SOURCE_THREAD_PATIENCE: Duration = Duration::from_millis(200);

/// A running pipeline. Dropping it stops it and joins every thread it started (a source thread
/// stuck inside the user's iterator excepted: see
/// [`PipelineBuilder::source_thread`](super::PipelineBuilder::source_thread)).
pub struct Pipeline<T: Send + 'static> {
    placement: Placement,
    runtime: Option<Hosted>,
    offload: Option<Arc<Offload>>,
    control: Arc<Control>,
    shard_tasks: Vec<JoinHandle<Vec<StageStats>>>,
    rings: Merge<SharedReceiver<Msg<T>>>,
    source_threads: Vec<std::thread::JoinHandle<()>>,
    /// Epochs whose end marker the consumer has passed.
    epochs_done: u64,
    /// Source items delivered since the last epoch marker.
    delivered_in_epoch: u64,
    waker: Option<ConsumerWaker>,
    assembler: Assembler,
    bound: u64,
    counts: ConsumerCounts,
    snapshots: Option<Arc<Snapshots>>,
    reporter: Option<Reporter>,
    state: State,
}

impl<T: Send> std::fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("placement", &self.placement)
            .field("stages", &self.assembler.names)
            .field("received", &self.counts.received)
            .finish_non_exhaustive()
    }
}

/// The waker the consumer's thread registers with the rings.
struct ConsumerWaker {
    thread: std::thread::ThreadId,
    waker: Waker,
    /// The same waker, to say which CPU the thread parks on (absent once the shards are gone).
    relay: Option<Arc<SameCpuWaker>>,
    /// The thread is a shard the pipeline runs on, where it must not park (see `park`).
    on_own_shard: bool,
}

/// Spins of the consumer over empty rings before it parks: a wake-up costs ~20-25 µs here, a
/// check a few ns, but the consumer shares the CPUs with the shards, so the spin stays short.
const SPINS_BEFORE_PARK: u32 = 64;

impl<T: Send + 'static> Pipeline<T> {
    pub(crate) fn new(parts: Parts<T>) -> Self {
        let Parts { placement, runtime, offload, control, shard_tasks, rings, source_threads, names, bound, reporting } =
            parts;
        let assembler = Assembler {
            placement: placement.label(),
            shards: runtime.get().shard_count(),
            driver: runtime.get().ring_mode().driver(),
            names,
            start: control.start,
            control: control.clone(),
        };
        let (snapshots, reporter) = match reporting {
            Some((every, callback, snapshots)) => {
                // Without the thread there are no periodic reports; the final one still comes.
                let usage = Box::new(runtime.usage_reader());
                let reporter = Reporter::start(every, callback, snapshots.clone(), assembler.clone(), usage).ok();
                (Some(snapshots), reporter)
            }
            None => (None, None),
        };
        Self {
            placement,
            runtime: Some(runtime),
            offload,
            control,
            shard_tasks,
            rings,
            source_threads,
            epochs_done: 0,
            delivered_in_epoch: 0,
            waker: None,
            assembler,
            bound,
            counts: ConsumerCounts::default(),
            snapshots,
            reporter,
            state: State::Running,
        }
    }

    /// An upper bound on source items inside the pipeline at once (every queue, ring, batch and
    /// task slot full), from the configured sizes. Backpressure keeps the source within it.
    pub fn in_flight_bound(&self) -> u64 {
        self.bound
    }

    /// Stage names, source first, sink last.
    pub fn stage_names(&self) -> &[String] {
        &self.assembler.names
    }

    /// The calling thread's waker (made again if the pipeline moved to another thread).
    fn waker(&mut self) -> Waker {
        let me = std::thread::current().id();
        match &self.waker {
            Some(w) if w.thread == me => w.waker.clone(),
            _ => {
                let relay = self.runtime.as_ref().map(|r| r.get().same_cpu_waker());
                let waker = relay.as_ref().map_or_else(ThreadWaker::current, |r| Waker::from(r.clone()));
                let on_own_shard = self.on_own_shard();
                self.waker = Some(ConsumerWaker { thread: me, waker: waker.clone(), relay, on_own_shard });
                waker
            }
        }
    }

    /// Whether the calling thread is a shard this pipeline runs on (`build_on`, consumed from a
    /// task on the same runtime): waiting there would block the event loop the stages need.
    fn on_own_shard(&self) -> bool {
        self.runtime.as_ref().is_some_and(|r| r.get().is_current_shard())
    }

    /// Parks the consumer until woken or `timeout` passes (`None`: no limit). Callers have made
    /// the calling thread's waker (`waker()`) first.
    ///
    /// # Panics
    /// On a shard the pipeline runs on, where parking would never end.
    fn park(&self, timeout: Option<Duration>) {
        assert!(
            !self.waker.as_ref().is_some_and(|w| w.on_own_shard),
            "a pipeline cannot be waited on from a task on a shard it runs on (that would block the shard's \
             event loop, which its stages need): iterate it from a plain thread (std::thread::spawn)"
        );
        if let Some(relay) = self.waker.as_ref().and_then(|w| w.relay.as_ref()) {
            relay.note_cpu();
        }
        match timeout {
            None => std::thread::park(),
            Some(d) => std::thread::park_timeout(d),
        }
    }

    /// The next message from the shards: an item, an epoch marker, or `Ready(None)` at the end.
    fn poll_rings(&mut self, waker: &Waker) -> Poll<Option<Msg<T>>> {
        self.rings.poll_next(&mut Context::from_waker(waker))
    }

    /// Waits up to `timeout` for the next message; `Err` when it timed out or the stream ended.
    fn next_msg(&mut self, timeout: Duration) -> Result<Msg<T>, RecvTimeoutError> {
        match &mut self.state {
            State::Running => {}
            State::Ended { error: Some(e), error_returned, .. } if !*error_returned => {
                *error_returned = true;
                return Err(RecvTimeoutError::Failed(e.clone()));
            }
            State::Ended { .. } | State::Finished => return Err(RecvTimeoutError::Ended),
        }
        // Fast path: something is ready. The no-op waker is safe here: if nothing is ready the
        // loop below polls again with the real waker, which re-registers and re-checks.
        let mut waker = Waker::noop().clone();
        let mut deadline = None;
        let mut spins = 0;
        loop {
            match self.poll_rings(&waker) {
                Poll::Ready(Some(Msg::Item(env))) => return Ok(Msg::Item(env)),
                Poll::Ready(Some(Msg::Epoch(e))) => {
                    self.epochs_done = e + 1;
                    self.delivered_in_epoch = 0;
                    return Ok(Msg::Epoch(e));
                }
                Poll::Ready(Some(Msg::Chunk)) => continue,
                Poll::Ready(None) => {
                    self.end();
                    return self.next_msg(Duration::ZERO);
                }
                Poll::Pending => {}
            }
            if deadline.is_none() {
                deadline = Some(Instant::now().checked_add(timeout));
                waker = self.waker();
                continue;
            }
            if spins < SPINS_BEFORE_PARK {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            match deadline.flatten() {
                None => self.park(None),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.park(Some(d - now));
                }
            }
        }
    }

    /// Waits up to `timeout` for the next item (epoch boundaries pass unseen; iterate
    /// [`Pipeline::epoch`] to see them).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let mut deadline = None;
        loop {
            let left = match deadline {
                None => timeout,
                Some(d) => Instant::saturating_duration_since(&d, Instant::now()),
            };
            match self.next_msg(left)? {
                Msg::Item(env) => return Ok(self.deliver(env)),
                // Markers are rare: only then is the clock read to keep the deadline.
                Msg::Epoch(_) | Msg::Chunk => {
                    deadline = deadline.or_else(|| Instant::now().checked_add(timeout));
                }
            }
        }
    }

    /// The items of the next epoch of a [`source_epochs`](super::source_epochs) pipeline: the
    /// iterator ends at the epoch's end marker (or at the end of the stream). For a one-pass
    /// source the one "epoch" is the whole stream.
    pub fn epoch(&mut self) -> EpochItems<'_, T> {
        EpochItems { pipeline: self, done: false }
    }

    /// Epochs the consumer has finished (passed the end marker of).
    pub fn epochs_done(&self) -> u64 {
        self.epochs_done
    }

    /// How far the consumer is through the epoch it is on: source items delivered so far, out
    /// of the pass's length when the source's iterator knew it (an exact `size_hint`: ranges,
    /// `Vec`s, image folders). For a one-pass source the epoch is the whole stream. Items that
    /// failed or were filtered are not delivered, so such a run ends short of its length.
    pub fn progress(&self) -> Progress {
        Progress {
            epoch: self.epochs_done,
            delivered: self.delivered_in_epoch,
            len: self.control.pass_len(self.epochs_done),
        }
    }

    /// Each shard's busy and idle time and task polls since the pipeline started, read live
    /// (two readings and [`ShardUsage::since`](crate::runtime::ShardUsage::since) give a recent
    /// stretch's). On a shared runtime ([`PipelineBuilder::build_on`](super::PipelineBuilder::build_on))
    /// it counts whatever else runs on the shards too. Empty once the pipeline has ended: the
    /// report has the final figures.
    pub fn shard_usage(&self) -> Vec<crate::runtime::ShardUsage> {
        self.runtime.as_ref().map(Hosted::usage_since_start).unwrap_or_default()
    }

    /// Waits for the next item; `None` at the end (see [`Pipeline::finish`] for why it ended).
    pub fn recv(&mut self) -> Option<T> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600)) {
                Ok(v) => return Some(v),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Iterates the items until the end.
    pub fn iter(&mut self) -> Items<'_, T> {
        Items { pipeline: self }
    }

    fn deliver(&mut self, env: Envelope<T>) -> T {
        let now = self.control.now_ns();
        let c = &mut self.counts;
        c.received += 1;
        c.delivered += env.units();
        self.delivered_in_epoch += env.units();
        env.stamps.for_each(|s| c.latency.record(now.saturating_sub(s)));
        if let Some(s) = &self.snapshots
            && s.wants_consumer()
        {
            s.store_consumer(&self.counts);
        }
        env.value
    }

    /// Stops the pipeline: the source stops, every stage discards what it holds (counted as
    /// discarded), and every thread is joined. Idempotent.
    pub fn stop(&mut self) {
        self.control.stop();
        self.drain_and_end();
    }

    /// Takes whatever is still coming without handing it to the caller (counted as discarded),
    /// then ends.
    fn drain_and_end(&mut self) {
        if !matches!(self.state, State::Running) {
            return;
        }
        let waker = self.waker();
        loop {
            match self.poll_rings(&waker) {
                Poll::Ready(Some(Msg::Item(env))) => self.counts.discarded += env.units(),
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => break,
                Poll::Pending => self.park(Some(Duration::from_millis(10))),
            }
        }
        self.end();
    }

    /// Waits for the end and returns the report, or the failure-limit error with the report
    /// inside. Items not received by then are counted as discarded.
    pub fn finish(mut self) -> Result<Report, PipelineFailed> {
        self.drain_and_end();
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Ended { report, error: None, .. } => Ok(report.into_report()),
            State::Ended { report, error: Some(error), .. } => {
                Err(PipelineFailed { error, report: Box::new(report.into_report()) })
            }
            State::Running | State::Finished => unreachable!("drain_and_end() leaves the pipeline ended"),
        }
    }

    /// The final report, once the pipeline has ended (assembled at the first call: merging
    /// every shard's histograms takes about a millisecond, which a consumer that never asks
    /// does not pay).
    pub fn report(&self) -> Option<&Report> {
        match &self.state {
            State::Ended { report, .. } => Some(report.get()),
            State::Running | State::Finished => None,
        }
    }

    /// All rings ended: join the shards and assemble the report.
    fn end(&mut self) {
        if !matches!(self.state, State::Running) {
            return;
        }
        // A shard task that did not finish (it panicked: a bug) leaves its counters out and the
        // account will not balance, which the report shows.
        let per_shard: Vec<_> = self.shard_tasks.drain(..).filter_map(|h| h.join().ok()).collect();
        let elapsed = self.assembler.start.elapsed();
        let (shard_usage, mut trace) = self.runtime.take().map(Hosted::end).unwrap_or_default();
        // The source task has ended with the shards: the thread stops at its next item.
        source_thread::join(std::mem::take(&mut self.source_threads), SOURCE_THREAD_PATIENCE);
        // Every task holding a clone of the pool has ended with the shards.
        if let Some(mut pool) = self.offload.take().and_then(|p| Arc::try_unwrap(p).ok()) {
            trace.extend(pool.shut_down());
        }
        // The latency histogram moves into the ending (the counters stay for `Debug`).
        let latency = std::mem::take(&mut self.counts.latency);
        let report = Box::new(LazyReport::new(Ending {
            assembler: self.assembler.clone(),
            per_shard,
            consumer: ConsumerCounts { latency, ..self.counts.clone() },
            shard_usage,
            trace,
            elapsed,
        }));
        if let Some(mut callback) = self.reporter.take().and_then(Reporter::finish) {
            callback(report.get());
        }
        let error = self.control.limit_error();
        self.state = State::Ended { report, error, error_returned: false };
    }
}

impl<T: Send + 'static> Drop for Pipeline<T> {
    fn drop(&mut self) {
        if self.on_own_shard() {
            // Waiting here would never end (see `park`): stop, and let the stages wind down
            // once this task gives the shard back; their counters are not waited for.
            self.control.stop();
            return;
        }
        self.stop();
    }
}

/// Everything a built pipeline starts with.
pub(crate) struct Parts<T: Send + 'static> {
    pub(crate) placement: Placement,
    pub(crate) runtime: Hosted,
    pub(crate) offload: Option<Arc<Offload>>,
    pub(crate) control: Arc<Control>,
    pub(crate) shard_tasks: Vec<JoinHandle<Vec<StageStats>>>,
    pub(crate) rings: Merge<SharedReceiver<Msg<T>>>,
    pub(crate) source_threads: Vec<std::thread::JoinHandle<()>>,
    pub(crate) names: Vec<String>,
    pub(crate) bound: u64,
    pub(crate) reporting: Option<(Duration, super::progress::ReportFn, Arc<Snapshots>)>,
}

/// The failure-limit error with the report of the run it ended.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PipelineFailed {
    /// Which stages failed, how often, and sample messages.
    pub error: FailureLimitExceeded,
    /// The run's report (the account still balances).
    pub report: Box<Report>,
}

/// Iterator over one epoch's items (see [`Pipeline::epoch`]).
#[derive(Debug)]
pub struct EpochItems<'a, T: Send + 'static> {
    pipeline: &'a mut Pipeline<T>,
    done: bool,
}

impl<T: Send + 'static> EpochItems<'_, T> {
    /// [`Pipeline::progress`], while iterating: `while let Some(b) = items.next() { items.progress() }`.
    pub fn progress(&self) -> Progress {
        self.pipeline.progress()
    }
}

impl<T: Send + 'static> Iterator for EpochItems<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        while !self.done {
            match self.pipeline.next_msg(Duration::from_secs(3600)) {
                Ok(Msg::Item(env)) => return Some(self.pipeline.deliver(env)),
                Ok(Msg::Epoch(_)) | Err(RecvTimeoutError::Ended | RecvTimeoutError::Failed(_)) => self.done = true,
                Ok(Msg::Chunk) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        None
    }
}

/// Iterator over a pipeline's items (see [`Pipeline::iter`]).
#[derive(Debug)]
pub struct Items<'a, T: Send + 'static> {
    pipeline: &'a mut Pipeline<T>,
}

impl<T: Send + 'static> Items<'_, T> {
    /// [`Pipeline::progress`], while iterating.
    pub fn progress(&self) -> Progress {
        self.pipeline.progress()
    }
}

impl<T: Send + 'static> Iterator for Items<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.pipeline.recv()
    }
}
