//! One shard: a pinned thread running the loop below over its run queues, timers and ring.
//!
//! ```text
//!   other threads ──push──▶ inbox (SegQueue) ─┐          ┌──▶ local run queue (VecDeque)
//!   other shards  ──wake──▶ inbox + doorbell ─┴─ drain ──┤        │ run ≤ tasks_per_turn
//!                                                        │        ▼
//!   ring completions ─── reap ── wake ───────────────────┘   tasks poll: ops push SQEs,
//!   timers (BTreeMap) ── fire ── wake ───────────────────┘   channel sends batch items
//!                                                              │
//!   end of turn: flush channel batches, submit SQEs + reap ◀───┘
//!   idle: spin `spin_before_park`, arm doorbell, re-check, block in io_uring_enter
//! ```

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::task::Runnable;
use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;

use super::builder::BuildError;
use super::context::{self, Context};
use super::time::Timers;
use super::usage::LiveUsage;
use crate::channel::doorbell::Doorbell;
use crate::driver::{Driver, DriverChoice, DriverStats, RingMode};

const CLOSED: usize = 1;
const ONE_PENDING: usize = 2;

/// The part of a shard other threads can reach.
pub(crate) struct ShardShared {
    pub(crate) id: usize,
    /// Unique in the process (shard ids repeat across runtimes): how a task knows it is home.
    pub(crate) key: u64,
    /// Tasks woken or spawned from other threads.
    inbox: SegQueue<Runnable>,
    /// Armed while the shard is about to block in its ring.
    bell: CachePadded<Doorbell>,
    /// The shard's ring fd for `MSG_RING` wakes; -1 before start and after exit.
    ring_fd: AtomicI32,
    eventfd: OwnedFd,
    /// `CLOSED` bit, plus `ONE_PENDING` per remote spawn between its check and its push.
    state: AtomicUsize,
    /// The CPU the shard's thread is pinned to ([`NO_CPU`] when unpinned or not started).
    pinned_cpu: AtomicUsize,
    /// Busy and idle time and task polls, for readers on other threads.
    pub(crate) usage: CachePadded<LiveUsage>,
}

/// `pinned_cpu` of a shard that is not pinned.
const NO_CPU: usize = usize::MAX;

impl std::fmt::Debug for ShardShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardShared").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ShardShared {
    pub(crate) fn new(id: usize) -> std::io::Result<Self> {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        Ok(Self {
            id,
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            inbox: SegQueue::new(),
            bell: CachePadded::new(Doorbell::new()),
            ring_fd: AtomicI32::new(-1),
            eventfd: crate::sys::eventfd()?,
            state: AtomicUsize::new(0),
            pinned_cpu: AtomicUsize::new(NO_CPU),
            usage: CachePadded::new(LiveUsage::default()),
        })
    }

    /// The CPU this shard runs pinned to, if it is pinned.
    pub(crate) fn pinned_cpu(&self) -> Option<usize> {
        Some(self.pinned_cpu.load(Ordering::Relaxed)).filter(|&c| c != NO_CPU)
    }

    /// Whether the shard has announced that it blocks in its ring (it is idle; a push wakes it).
    pub(crate) fn is_parked(&self) -> bool {
        self.bell.is_armed()
    }

    /// Hands `r` to this shard and wakes it if (and only if) it announced sleep.
    pub(crate) fn push_remote(&self, r: Runnable) {
        self.inbox.push(r);
        if self.bell.take() {
            self.wake();
        }
    }

    /// Delivers a wake: `MSG_RING` from a shard thread, else an eventfd write.
    fn wake(&self) {
        let ring_fd = self.ring_fd.load(Ordering::Acquire);
        let efd = self.eventfd.as_raw_fd();
        context::trace(|b| b.instant("wake", Instant::now(), self.id as u64));
        let sent = context::with(|cx| match cx.driver.try_borrow_mut() {
            Ok(mut d) => {
                d.wake_peer(ring_fd, efd);
                true
            }
            Err(_) => false,
        });
        if sent != Some(true) {
            crate::sys::eventfd_signal(efd);
        }
    }

    pub(crate) fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// Starts a remote submission; false once the runtime is closed.
    pub(crate) fn begin_remote(&self) -> bool {
        let s = self.state.fetch_add(ONE_PENDING, Ordering::AcqRel);
        if s & CLOSED != 0 {
            self.state.fetch_sub(ONE_PENDING, Ordering::Release);
            return false;
        }
        true
    }

    pub(crate) fn end_remote(&self) {
        self.state.fetch_sub(ONE_PENDING, Ordering::Release);
    }

    /// Stops accepting remote work and wakes the shard so it notices.
    pub(crate) fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        crate::sys::eventfd_signal(self.eventfd.as_raw_fd());
    }

    fn closed_and_no_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }
}

/// Per-shard settings taken from the builder.
#[derive(Debug, Clone)]
pub(crate) struct ShardConfig {
    pub(crate) spin_before_park: Duration,
    pub(crate) ring_entries: u32,
    pub(crate) tasks_per_turn: u32,
    pub(crate) task_budget: u32,
    pub(crate) eventfd_wake: bool,
    /// io_uring, the fallback, or io_uring when it works (resolved from `SHARDPIPE_DRIVER` at build).
    pub(crate) driver: DriverChoice,
    /// Record a timeline from this epoch (`Builder::trace`).
    pub(crate) trace: Option<Instant>,
}

/// What a shard reports once it has started.
#[derive(Debug, Clone, Copy)]
pub struct ShardInfo {
    /// Shard index.
    pub id: usize,
    /// The CPU it is pinned to (`None` when pinning was turned off).
    pub cpu: Option<usize>,
    /// The ring's setup flags, or [`RingMode::Fallback`] without io_uring.
    pub ring_mode: RingMode,
    /// Whether it wakes peers with `MSG_RING` (else eventfd).
    pub msg_ring: bool,
}

/// What a shard did, returned when the runtime shuts down.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// Shard index.
    pub id: usize,
    /// Task polls run.
    pub tasks_run: u64,
    /// Time the loop spent outside spinning and parking.
    pub busy: Duration,
    /// Time spent spinning before parking, and parked.
    pub idle: Duration,
    /// Ring counters.
    pub driver: DriverStats,
    /// The shard's timeline, when the runtime was built with `trace`.
    pub trace: Option<crate::trace::Track>,
}

/// Body of a shard thread: set up, report, loop until shut down and quiet, tear down.
pub(crate) fn run(
    shared: Arc<ShardShared>,
    cfg: ShardConfig,
    cpu: usize,
    pin: bool,
    started: std::sync::mpsc::Sender<Result<ShardInfo, BuildError>>,
) -> ShardReport {
    if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        let _ = started.send(Err(BuildError::PinFailed { shard: shared.id, cpu }));
        return ShardReport::empty(shared.id);
    }
    let cpu = pin.then_some(cpu);
    if let Some(c) = cpu {
        shared.pinned_cpu.store(c, Ordering::Relaxed);
    }
    // Best effort: with the default slack timers fire up to 50 µs late; nothing breaks without it.
    let _ = crate::sys::tight_timer_slack();
    // The ring is created here, on its own thread: SINGLE_ISSUER binds it to its creator.
    let driver = match Driver::new(cfg.driver, cfg.ring_entries, shared.eventfd.as_raw_fd(), !cfg.eventfd_wake) {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(BuildError::Uring(e)));
            return ShardReport::empty(shared.id);
        }
    };
    shared.ring_fd.store(driver.ring_fd(), Ordering::Release);
    let info = ShardInfo { id: shared.id, cpu, ring_mode: driver.mode(), msg_ring: driver.uses_msg_ring() };
    let cx = Rc::new(Context {
        shard: shared.clone(),
        driver: RefCell::new(driver),
        timers: RefCell::new(Timers::default()),
        deferred: RefCell::new(Vec::new()),
        tasks_run: Cell::new(0),
        spin: !cfg.spin_before_park.is_zero(),
        task_budget: cfg.task_budget,
    });
    context::enter(cx.clone());
    if let Some(epoch) = cfg.trace {
        context::start_trace(crate::trace::TraceBuf::new(format!("shard-{}", shared.id), epoch));
    }
    let _ = started.send(Ok(info));

    let (busy, idle) = run_loop(&cx, &cfg);

    shared.ring_fd.store(-1, Ordering::Release);
    let driver = cx.driver.borrow().stats();
    let trace = context::take_trace().map(crate::trace::TraceBuf::finish);
    let report = ShardReport { id: shared.id, tasks_run: cx.tasks_run.get(), busy, idle, driver, trace };
    context::leave();
    // Dropping the context drops the driver, which waits for every in-flight completion.
    drop(cx);
    report
}

fn run_loop(cx: &Context, cfg: &ShardConfig) -> (Duration, Duration) {
    let shared = &cx.shard;
    let started = shared.usage.begin();
    let mut idle = Duration::ZERO;
    let tracing = cfg.trace.is_some();
    loop {
        let mut progressed = drain_inbox(cx);
        let turn = tracing.then(Instant::now);
        let polls = cx.tasks_run.get();
        progressed |= run_tasks(cx, cfg);
        shared.usage.turn(cx.tasks_run.get());
        if let Some(t) = turn
            && cx.tasks_run.get() > polls
        {
            context::trace(|b| b.span("tasks", t, Instant::now(), cx.tasks_run.get() - polls));
        }
        flush_deferred(cx);
        if cx.timers.borrow().len() > 0 {
            progressed |= cx.timers.borrow_mut().fire(Instant::now()) > 0;
        }
        progressed |= cx.driver.borrow_mut().turn() > 0;
        if progressed {
            continue;
        }
        if shared.closed_and_no_pending()
            && context::live() == 0
            && context::local_is_empty()
            && shared.inbox.is_empty()
        {
            break;
        }
        let t = Instant::now();
        shared.usage.idle_from(t);
        park(cx, cfg);
        let woke = Instant::now();
        idle += woke - t;
        shared.usage.woke(idle);
        if tracing {
            context::trace(|b| b.span("idle", t, woke, 0));
        }
    }
    let ended = Instant::now();
    shared.usage.end(ended, cx.tasks_run.get());
    ((ended - started).saturating_sub(idle), idle)
}

fn drain_inbox(cx: &Context) -> bool {
    let mut any = false;
    while let Some(r) = cx.shard.inbox.pop() {
        any = true;
        context::push_local(r);
    }
    any
}

/// How long a turn may go on running tasks once one of them has yielded. A yield means a task
/// spent its budget (a batch of inline calls can take hundreds of µs); without this bound the
/// inbox, timers, ring and channel flushes would wait for `tasks_per_turn` such polls.
const TURN_AFTER_YIELD: Duration = Duration::from_micros(100);

fn run_tasks(cx: &Context, cfg: &ShardConfig) -> bool {
    let mut n = 0;
    // The clock is read only when a task yields, so cheap polls never pay for it; the bound
    // counts from the turn's first yield. A yield is noted only inside `r.run()` (async-task
    // schedules a task woken while running when its poll returns), so the flag is clear here.
    let mut first_yield = None;
    while n < cfg.tasks_per_turn {
        let next = context::pop_local();
        let Some(r) = next else { break };
        context::set_budget(cfg.task_budget);
        r.run();
        n += 1;
        if context::take_yield() {
            let now = Instant::now();
            if now - *first_yield.get_or_insert(now) >= TURN_AFTER_YIELD {
                break;
            }
        }
    }
    cx.tasks_run.set(cx.tasks_run.get() + n as u64);
    n > 0
}

fn flush_deferred(cx: &Context) {
    // Take the list so a flush that queues another flush cannot hit a RefCell borrow.
    let list = std::mem::take(&mut *cx.deferred.borrow_mut());
    for d in &list {
        d.flush();
    }
    let mut slot = cx.deferred.borrow_mut();
    if slot.is_empty() {
        let mut list = list;
        list.clear();
        *slot = list; // keep the allocation
    }
}

/// Anything runnable right now, without blocking?
fn has_work(cx: &Context) -> bool {
    !context::local_is_empty()
        || !cx.shard.inbox.is_empty()
        || cx.driver.borrow_mut().has_work()
        || cx.timers.borrow().next_wait(Instant::now()) == Some(Duration::ZERO)
}

/// Spin, then announce sleep, re-check, and block in the ring (docs/architecture.md).
fn park(cx: &Context, cfg: &ShardConfig) {
    let spin_until = Instant::now() + cfg.spin_before_park;
    loop {
        if has_work(cx) {
            return;
        }
        if Instant::now() >= spin_until {
            break;
        }
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        // A thread that is not a shard (the pipeline's consumer, say) may be waiting for this
        // CPU: an idle spin must not keep it off for the whole spin window.
        std::thread::yield_now();
    }
    let next_timer = cx.timers.borrow().next_wait(Instant::now());
    if !cfg.spin_before_park.is_zero() && next_timer.is_some_and(|w| w <= cfg.spin_before_park) {
        // The next timer is due within one more spin window: spinning catches it on time.
        return;
    }
    cx.shard.bell.arm();
    if has_work(cx) {
        cx.shard.bell.disarm();
        return;
    }
    // Wake a spin window before the next timer: waking an idle vCPU takes tens of µs, so a park
    // until the deadline itself made every sleep late by that much; the spin after this wake-up
    // fires the timer on time.
    let wait = cx.timers.borrow().next_wait(Instant::now()).map(|w| w.saturating_sub(cfg.spin_before_park));
    cx.driver.borrow_mut().park(wait);
    cx.shard.bell.disarm();
}
