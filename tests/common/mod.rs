//! Shared test helpers.
#![allow(dead_code)]

use shardpipe::pipeline::{Pipeline, PipelineBuildError, PipelineBuilder, Placement, Report};
use shardpipe::{BuildError, Builder, Runtime};

/// The placements every pipeline behaviour is checked in: one loop, one shard, every CPU.
pub const PLACEMENTS: [Placement; 3] =
    [Placement::SingleLoop { offload_threads: 2 }, Placement::Sharded { shards: 1 }, Placement::Sharded { shards: 0 }];

/// Builds a runtime, or prints why io_uring is unavailable and returns `None` (the test skips).
pub fn runtime(configure: impl FnOnce(&mut Builder)) -> Option<Runtime> {
    let mut b = Runtime::builder();
    configure(&mut b);
    match b.build() {
        Ok(rt) => Some(rt),
        Err(BuildError::Uring(e)) => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("runtime failed to start: {e}"),
    }
}

/// Two shards (oversubscribed if this machine has one CPU).
pub fn two_shards() -> Option<Runtime> {
    runtime(|b| {
        b.shards(2).oversubscribe(true);
    })
}

/// `n` shards on whatever CPUs there are, shared: for tests of a pipeline's shape on many shards.
pub fn many_shards(n: usize) -> Option<std::sync::Arc<Runtime>> {
    runtime(|b| {
        b.shards(n).oversubscribe(true).spin_before_park(std::time::Duration::from_micros(5));
    })
    .map(std::sync::Arc::new)
}

/// Iteration counts: smaller under miri.
pub const fn scaled(n: usize) -> usize {
    if cfg!(miri) { n / 1000 } else { n }
}

/// Runs the (possibly `!Send`) future `f` builds on shard `shard` and waits for its output.
pub fn on<F, Fut>(rt: &Runtime, shard: usize, f: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future + 'static,
    Fut::Output: Send + 'static,
{
    rt.run_on(shard, f).expect("spawn").join().expect("task finished")
}

/// Starts a pipeline, or prints why io_uring is unavailable and returns `None` (the test skips).
pub fn start<T: Send + 'static>(b: PipelineBuilder<T>, p: Placement) -> Option<Pipeline<T>> {
    match b.build(p) {
        Ok(p) => Some(p),
        Err(PipelineBuildError::Runtime(BuildError::Uring(e))) => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("pipeline failed to start: {e}"),
    }
}

/// `0..n`, counting in the returned counter how many items the pipeline has pulled.
pub fn counted(n: u64) -> (impl Iterator<Item = u64> + Send + 'static, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = pulled.clone();
    let items = (0..n).inspect(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    (items, pulled)
}

/// Drains `pipe` slowly (200 µs per batch) and checks that the source items pulled but not yet
/// consumed never exceed the pipeline's in-flight bound; returns the most seen.
pub fn drain_slowly_within_the_bound(
    mut pipe: Pipeline<Vec<u64>>,
    pulled: &std::sync::atomic::AtomicU64,
    what: &str,
) -> (u64, Report) {
    let bound = pipe.in_flight_bound();
    assert!(bound < 20_000, "the bound must be able to catch a leak: {bound}");
    let (mut consumed, mut worst) = (0u64, 0u64);
    while let Some(batch) = pipe.recv() {
        std::thread::sleep(std::time::Duration::from_micros(200));
        consumed += batch.len() as u64;
        worst = worst.max(pulled.load(std::sync::atomic::Ordering::Relaxed) - consumed);
    }
    assert!(worst <= bound, "{what}: {worst} source items in flight, bound {bound}");
    (worst, pipe.finish().expect("no failure limit"))
}

/// The report's account balances (every source item accounted for).
pub fn assert_balanced(r: &Report) {
    assert!(r.account.balances(), "account does not balance: {:?}\n{r}", r.account);
}
