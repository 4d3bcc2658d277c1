//! The functions that start a pipeline from its source: one iterator ([`source`]), a pass per
//! epoch ([`source_epochs`]), several iterators at once ([`merge_sources`]), or items every
//! shard makes for itself ([`source_indexed`]).
//!
//! The first three place a source task on shard 0 that stamps items and deals them to the first
//! stage's shards through one ring per shard. The task pulls from the user's iterator right
//! there, or — with `source_thread()`, and always for merged sources — from rings fed by threads
//! that run the iterators (`source_thread.rs`). [`source_indexed`] places a task on every shard of
//! the first stage instead (`split_source.rs`).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use super::builder::{PipelineBuilder, Wire};
use super::envelope::Msg;
use super::exchange::Dealer;
use super::profile::{source_profiler, take_wire};
use super::queue::local_queue;
use super::source::{Inline, Passes, source_task};
use super::source_thread::{self, Fed, Feed};
use super::split_source::{Split, SplitShare, split_source_task};
use super::stage::{Inbound, StageCx};
use super::wiring::{DEFAULT_BUFFER, Kind, PlaceSource, ShardBuild, StageSpec, Wiring};
use crate::channel;

/// Capacity of the source's ring to each shard unless set with `buffer(n)` right after
/// `source`. Smaller rings let a shard run dry while shard 0 (which also runs the source) is
/// busy with its own share of the stages: with 256, shard 1 sat idle 4-7% of a CPU-bound run.
const SOURCE_RING: usize = 1024;

/// Slots of each ring from a source thread to the source task.
const SOURCE_FEED: usize = 256;

/// Starts a pipeline from `items` (any iterator whose items can cross threads): one pass.
pub fn source<I>(items: I) -> PipelineBuilder<I::Item>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    let mut once = Some(items.into_iter());
    source_passes(move |_| once.take(), false)
}

/// A continuous source (SPDL's `continuous=True`): `make(epoch)` gives the items of each pass,
/// `None` ends the stream (never returning `None` runs until `stop()`). An end-of-epoch marker
/// follows each pass; the consumer sees it as the end of [`Pipeline::epoch`](super::Pipeline::epoch)'s iterator. The
/// iterator is made on shard 0, so it need not be `Send` (a seeded shuffle per epoch, say).
pub fn source_epochs<I, M>(make: M) -> PipelineBuilder<I::Item>
where
    I: IntoIterator,
    I::IntoIter: 'static,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I> + Send + 'static,
{
    let mut make = make;
    source_passes(move |e| make(e).map(IntoIterator::into_iter), true)
}

/// Starts a pipeline from `len` items that every shard makes for itself: `item(i)` for each `i`
/// in `0..len`, called on the shard whose first stage takes the item. One pass.
///
/// [`source`] runs the user's iterator on shard 0, which stamps and deals every item to the other
/// shards: with cheap stages that one shard is the ceiling (a no-work pipeline keeps shard 0 busy
/// while the others idle). Here each shard claims chunks of 32 indices from a shared cursor as its
/// first stage takes them, so the source's work is spread and items stay on the shard that made
/// them; a shard that is behind claims fewer. Suits anything addressed by index: a file list
/// (`move |i| paths[i as usize].clone()`), a seeded generator, a range. In an ordered pipeline
/// shard `p` of `n` makes chunks `p, p + n, …` instead (no claiming, so no balancing), and
/// source order is kept.
///
/// `item` runs on several shards at once (hence `Sync`). A panic in it fails the pipeline, as
/// in [`source`]. `rate` and `source_thread` do not apply (the build refuses them): use
/// [`source`] for an open-loop or a blocking source.
pub fn source_indexed<T, F>(len: u64, item: F) -> PipelineBuilder<T>
where
    T: Send + 'static,
    F: Fn(u64) -> T + Send + Sync + 'static,
{
    let split = Split::new(len, item);
    let place: PlaceSource = Box::new(move |w: &mut Wiring, targets: &[usize]| {
        let cap = w.specs[0].buffer;
        let (ordered, shards) = (w.ordered, targets.len());
        w.hold(cap + 1, shards);
        for (position, &t) in targets.iter().enumerate() {
            let split = split.clone();
            w.steps[t].push(Box::new(move |sb: &mut ShardBuild| {
                let cx: StageCx = sb.stage(0);
                let (out, rx) = local_queue::<Msg<T>>(cap, Some(&cx.stats));
                sb.spawn(split_source_task(split, SplitShare { out, position, shards, ordered }, cx));
                sb.set_upstream(Inbound::Local(rx));
            }));
        }
    });
    let mut spec = StageSpec::new("source".into(), Kind::Source, DEFAULT_BUFFER);
    spec.split = true;
    placed_source::<T>(place, spec)
}

/// Starts a pipeline from several iterators at once (SPDL's `Merge` of sources; mixing data
/// sets, say). Each runs on a thread of its own (`pipeline-source-K`, as with
/// `source_thread()`) and their items enter in arrival order: a slow or blocking source does not
/// hold the others up, and one that ends early leaves the rest running. One pass; the stream ends
/// when every source has ended, and its length ([`Pipeline::progress`](super::Pipeline::progress))
/// is their sum when each knows its own. A panic in any of them fails the pipeline, as in a
/// single source. To give the items of each source stages of their own (or merge sources of
/// different item types), use [`merge_pipelines`](super::merge_pipelines).
pub fn merge_sources<S, I>(sources: S) -> PipelineBuilder<I::Item>
where
    S: IntoIterator<Item = I>,
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    let iters: Vec<I::IntoIter> = sources.into_iter().map(IntoIterator::into_iter).collect();
    with_source(move |w: &mut Wiring| {
        let feeds: Vec<_> = iters
            .into_iter()
            .enumerate()
            .map(|(k, items)| {
                let mut once = Some(items);
                feed_thread(w, format!("pipeline-source-{k}"), move |_| once.take())
            })
            .collect();
        source_step(false, move || Fed::new(feeds.into_iter().map(|f| f.connect()).collect()))
    })
}

fn source_passes<I, M>(make: M, mark_epochs: bool) -> PipelineBuilder<I::Item>
where
    I: Iterator + 'static,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I> + Send + 'static,
{
    with_source(move |w: &mut Wiring| {
        if w.specs[0].threaded {
            // The user's iterator on its own thread, feeding the source task.
            let feed = feed_thread(w, "pipeline-source".into(), make);
            source_step(mark_epochs, move || Fed::new(vec![feed.connect()]))
        } else {
            source_step(mark_epochs, move || Inline::new(make))
        }
    })
}

/// Starts a thread named `name` running the passes `make` builds, and returns the (not yet
/// connected) end of the ring it feeds; the thread, or why it did not start, goes to `w`.
fn feed_thread<I, M>(w: &mut Wiring, name: String, make: M) -> channel::SharedReceiver<Feed<I::Item>>
where
    I: Iterator,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I> + Send + 'static,
{
    let (feed_tx, feed_rx) = channel::bounded::<Feed<I::Item>>(SOURCE_FEED);
    w.hold(SOURCE_FEED + 1, 1);
    w.source_threads.push(source_thread::spawn(name, make, feed_tx));
    feed_rx
}

/// What shard 0 runs for the source, given its dealer and the source's rate.
type SourceStep<T> = Box<dyn FnOnce(&mut ShardBuild, Dealer<T>, Option<f64>) + Send>;

/// The step that spawns the source task over the passes `make` builds on shard 0.
fn source_step<P: Passes + 'static>(
    mark_epochs: bool,
    make: impl FnOnce() -> P + Send + 'static,
) -> SourceStep<P::Item> {
    Box::new(move |sb: &mut ShardBuild, dealer: Dealer<P::Item>, rate: Option<f64>| {
        let cx: StageCx = sb.stage(0);
        sb.spawn(source_task(make(), mark_epochs, rate, dealer, cx));
    })
}

/// A builder whose source `prepare` sets up once the first stage's shards are known (threads
/// and their rings, on the building thread) and whose task it returns; the rings from shard 0 to
/// those shards are made here.
fn with_source<T, F>(prepare: F) -> PipelineBuilder<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Wiring) -> SourceStep<T> + Send + 'static,
{
    let place: PlaceSource = Box::new(move |w: &mut Wiring, targets: &[usize]| {
        let step = prepare(w);
        let cap = w.specs[0].buffer;
        let rate = w.specs[0].rate;
        let ordered = w.ordered;
        let (txs, rxs): (Vec<_>, Vec<_>) = targets.iter().map(|_| channel::bounded::<Msg<T>>(cap)).unzip();
        w.hold(cap.max(2).next_power_of_two() + 1, targets.len());
        // The source runs on shard 0; it may also be one of the first stage's shards.
        let local = targets.iter().position(|&t| t == 0);
        w.steps[0].push(Box::new(move |sb: &mut ShardBuild| {
            let mut dealer = Dealer::new(txs.into_iter().map(|t| t.connect()).collect(), ordered, true);
            if let Some(i) = local {
                dealer = dealer.with_local(i);
            }
            step(sb, dealer, rate);
        }));
        for (&t, rx) in targets.iter().zip(rxs) {
            w.steps[t].push(Box::new(move |sb: &mut ShardBuild| sb.set_upstream(Inbound::Ring(rx.connect()))));
        }
    });
    placed_source::<T>(place, StageSpec::new("source".into(), Kind::Source, SOURCE_RING))
}

/// A builder whose source `place` lays out once the first stage's shards are known.
fn placed_source<T: Send + 'static>(place: PlaceSource, spec: StageSpec) -> PipelineBuilder<T> {
    let wire: Wire = Box::new(move |w: &mut Wiring| w.source = Some(place));
    // The wiring waits in a slot that `profile` can take it from instead.
    let slot = Arc::new(Mutex::new(Some(wire)));
    let taker = slot.clone();
    let mut b = bare_builder(Box::new(move |w: &mut Wiring| take_wire(&taker)(w)), spec);
    b.profilers[0] = Some(source_profiler::<T>(slot));
    b
}

/// A builder of the source that `wire` lays out, with `spec`, and no stage yet.
pub(super) fn bare_builder<T>(wire: Wire, spec: StageSpec) -> PipelineBuilder<T> {
    PipelineBuilder {
        wire,
        specs: vec![spec],
        max_failures_total: None,
        max_failure_rate_total: None,
        sink_buffer: 3,
        report_every: None,
        trace: false,
        tails: vec![(0, 0)],
        last: 0,
        profilers: vec![None],
        task_hook: None,
        scratch: None,
        _out: PhantomData,
    }
}
