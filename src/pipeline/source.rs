//! The tasks that move items without transforming them: the source (pulls passes from the
//! user's iterator and deals them to the first stage's shards) and the dealer that carries a
//! stream across a boundary between shard sets (or to the consumer).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::envelope::{Envelope, Msg, Stamps};
use super::exchange::{CHUNK, Dealer};
use super::stage::{BATCH, Inbound, StageCx, charge};
use crate::runtime::task_panic_message;
use crate::runtime::time::sleep;

/// Items that come further apart than this mark the iterator as slow (it does work or waits per
/// item): the source then publishes before each call into it. Even a pipeline round trip through
/// the consumer (a source that waits for a token) takes longer.
const SLOW_GAP_NS: u64 = 2_000;
/// The longest a dealt item waits for publication while the iterator keeps returning items.
const MAX_UNPUBLISHED_NS: u64 = 20_000;

/// Where the source task gets its items: the user's iterator called right here on the shard
/// ([`Inline`]), or the source thread's feed ([`super::source_thread`]).
pub(crate) trait Passes {
    type Item: Send + 'static;

    /// `next` returns without waiting (the user's iterator called right here): the source may
    /// then hold a few fast items back and deal them as one run.
    const NEVER_WAITS: bool;

    /// Starts pass `epoch`: `false` when there is none (the stream ends, or the user's code
    /// panicked, which has failed the pipeline).
    async fn start(&mut self, epoch: u64, cx: &StageCx) -> bool;

    /// The pass's next item, `None` at its end. `publish` lets the consumer of the dealt items
    /// see them: called before anything that may take long (`slow`: the iterator has been).
    async fn next(&mut self, cx: &StageCx, slow: bool, publish: &dyn Fn()) -> Option<Self::Item>;
}

/// The user's passes, called on the source's shard.
pub(crate) struct Inline<I, M> {
    make_pass: M,
    items: Option<I>,
}

impl<I, M> Inline<I, M> {
    pub(crate) fn new(make_pass: M) -> Self {
        Self { make_pass, items: None }
    }
}

impl<I, M> Passes for Inline<I, M>
where
    I: Iterator,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I>,
{
    type Item = I::Item;

    const NEVER_WAITS: bool = true;

    async fn start(&mut self, epoch: u64, cx: &StageCx) -> bool {
        self.items = pull(cx, || (self.make_pass)(epoch)).flatten();
        let Some(items) = &self.items else { return false };
        cx.control.started_pass(epoch, exact_len(items));
        true
    }

    async fn next(&mut self, cx: &StageCx, slow: bool, publish: &dyn Fn()) -> Option<I::Item> {
        if slow {
            publish();
        }
        let items = self.items.as_mut()?;
        pull(cx, || items.next()).flatten()
    }
}

/// Items stamped but not dealt yet: a fast iterator's items go to the dealer a run at a time
/// (one ring borrow and one batching check per run, not per item). A run is dealt before
/// anything that may wait, and as soon as it fills the current target's chunk, its first item
/// is [`SLOW_GAP_NS`] old, or an item came slowly, so holding items back costs them at most that.
struct Run<T> {
    items: Vec<Msg<T>>,
    first_ns: u64,
}

impl<T: Send + 'static> Run<T> {
    /// Adds an item stamped at `now`; true when the run must be dealt now.
    fn add(&mut self, env: Envelope<T>, now: u64, slow: bool, dealer: &Dealer<T>) -> bool {
        if self.items.is_empty() {
            self.first_ns = now;
        }
        self.items.push(Msg::Item(env));
        slow || self.items.len() >= dealer.run_room() || now.saturating_sub(self.first_ns) >= SLOW_GAP_NS
    }

    /// Deals the run: in one go when the current target has room, else item by item, waiting
    /// where every ring is full. Returns how many items were dealt.
    async fn deal(&mut self, dealer: &mut Dealer<T>, cx: &StageCx) -> usize {
        let n = self.items.len();
        if n == 0 {
            return 0;
        }
        cx.received(n);
        // A lone item (a slow or rated source, an ordered dealer) takes `try_item`'s path alone.
        if n == 1 || !dealer.try_run(&mut self.items, cx) {
            for msg in self.items.drain(..) {
                let Msg::Item(env) = msg else { unreachable!("a run holds items only") };
                if let Err(msg) = dealer.try_item(env, cx) {
                    dealer.send(msg, cx).await;
                }
            }
        }
        n
    }
}

/// A pass's length, when its iterator knows it (an exact size hint: a range, a `Vec`, a file
/// list): progress.
pub(crate) fn exact_len(items: &impl Iterator) -> Option<u64> {
    let (low, high) = items.size_hint();
    (high == Some(low)).then_some(low as u64)
}

/// Pulls pass after pass from `passes` (until there are no more or the pipeline stops), stamps
/// each item, and deals it out; after each pass an epoch marker when `mark_epochs`.
///
/// Dealt items are published in batches, normally at the end of the shard's loop turn: one
/// release store per batch, where one per item cost a fast source 40% of its throughput. But
/// the user's iterator may be slow, or block (a socket, a token): the turn would not end, and
/// items would sit unpublished. So the source also publishes when 20 µs have passed since it last
/// did, and before every call into an iterator whose items come more than 2 µs apart (the gap
/// between stamps, read anyway, tells). What this cannot catch: an iterator that returns items
/// quickly and then blocks until the consumer has them (it waits on itself: run such an
/// iterator on the source thread, `source_thread()`, docs/pipeline.md). Before any of that, a
/// fast iterator's items reach the dealer a [`Run`] at a time.
pub(crate) async fn source_task<P: Passes>(
    mut passes: P,
    mark_epochs: bool,
    rate: Option<f64>,
    mut dealer: Dealer<P::Item>,
    cx: StageCx,
) {
    let mut since_charge = 0usize;
    let (mut last_stamp, mut last_flush) = (0u64, 0u64);
    // Runs only where nothing in the loop waits between items (no rate to keep).
    let runs = P::NEVER_WAITS && rate.is_none();
    let mut run = Run { items: Vec::with_capacity(if runs { CHUNK } else { 1 }), first_ns: 0 };
    // Open loop: item k is due at `first + k / rate`; it is stamped with that time.
    let interval_ns = rate.map(|r| 1e9 / r);
    let mut emitted = 0u64;
    let first_ns = cx.control.now_ns();
    let mut slow = true;
    for epoch in 0.. {
        dealer.flush();
        if !passes.start(epoch, &cx).await {
            return;
        }
        loop {
            if cx.control.source_stopped() {
                run.deal(&mut dealer, &cx).await;
                return;
            }
            let Some(value) = passes.next(&cx, slow, &|| dealer.flush()).await else { break };
            let mut now = cx.control.now_ns();
            let stamp = match interval_ns {
                None => now,
                Some(every) => {
                    let due = first_ns + (emitted as f64 * every) as u64;
                    if due > now {
                        dealer.flush();
                        sleep(Duration::from_nanos(due - now)).await;
                        now = cx.control.now_ns();
                    }
                    due
                }
            };
            emitted += 1;
            slow = now.saturating_sub(last_stamp) > SLOW_GAP_NS;
            last_stamp = now;
            let env = Envelope { value, stamps: Stamps::One(stamp) };
            if !run.add(env, now, slow || !runs, &dealer) {
                continue;
            }
            since_charge += run.deal(&mut dealer, &cx).await;
            if now.saturating_sub(last_flush) > MAX_UNPUBLISHED_NS {
                dealer.flush();
                last_flush = now;
            }
            if since_charge >= BATCH {
                charge(since_charge).await;
                since_charge = 0;
            }
        }
        run.deal(&mut dealer, &cx).await;
        if mark_epochs {
            dealer.send(Msg::Epoch(epoch), &cx).await;
        }
    }
}

/// Calls into the user's source code; a panic there ends the source and fails the pipeline
/// (`None`): an iterator that panicked cannot be resumed.
pub(crate) fn pull<R>(cx: &StageCx, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(p) => {
            source_panicked(cx, &task_panic_message(&*p));
            None
        }
    }
}

/// The user's source code panicked with `message`: counted, and the pipeline fails.
pub(crate) fn source_panicked(cx: &StageCx, message: &str) {
    cx.stats.borrow_mut().failures += 1;
    cx.control.fail_fatal(cx.index, format!("the source panicked: {message}"));
}

/// Carries this shard's stream across a boundary: to the next stage's shards, or to the
/// consumer. Items bound for a cancelled stage are discarded here.
pub(crate) async fn deal_task<T: Send + 'static>(mut input: Inbound<T>, mut dealer: Dealer<T>, cx: StageCx) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = input.recv_many(&mut buf, BATCH).await;
        if n == 0 {
            break;
        }
        let discarding = cx.discarding();
        for msg in buf.drain(..) {
            match msg {
                Msg::Item(env) if discarding => cx.discard(env.units()),
                msg => {
                    // The sink's dealer is a stage of its own in the report; a boundary
                    // between stages only carries items (the next stage counts them).
                    if dealer.counts_output() && matches!(msg, Msg::Item(_)) {
                        cx.received(1);
                    }
                    dealer.send(msg, &cx).await
                }
            }
        }
        charge(n).await;
    }
}
