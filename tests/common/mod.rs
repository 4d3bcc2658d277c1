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

/// The report's account balances (every source item accounted for).
pub fn assert_balanced(r: &Report) {
    assert!(r.account.balances(), "account does not balance: {:?}\n{r}", r.account);
}
