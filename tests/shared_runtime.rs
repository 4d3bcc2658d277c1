//! `build_on`: pipelines on the shards of a runtime they share with the caller's own tasks and
//! with each other. Outputs and the account, pipelines one after another and at once, a pipeline
//! dropped mid-stream, and what is refused.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{assert_balanced, two_shards};

use shardpipe::Runtime;
use shardpipe::pipeline::{PipelineBuildError, PipelineBuilder, path, source};
use shardpipe::time::sleep;

fn chain(n: u64) -> PipelineBuilder<Vec<u64>> {
    source(0..n)
        .map(|x| x * 3)
        .pipe_async(|x| async move {
            if x % 1000 == 0 {
                sleep(Duration::from_micros(50)).await;
            }
            Some(x)
        })
        .concurrency(16)
        .pipe_blocking(|x: u64| Ok::<_, String>(x + 1))
        .aggregate(64)
}

fn shared() -> Option<Arc<Runtime>> {
    two_shards().map(Arc::new)
}

#[test]
fn pipelines_one_after_another_run_on_the_same_shards_beside_the_callers_own_task() {
    let Some(rt) = shared() else { return };
    // The caller's own task keeps running on shard 0 the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicU64::new(0));
    let (s, t) = (stop.clone(), ticks.clone());
    let own = rt
        .run_on(0, move || async move {
            while !s.load(Ordering::Relaxed) {
                sleep(Duration::from_micros(200)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        })
        .expect("spawn");
    let n = 20_000;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut pipe = chain(n).build_on(&rt).expect("pipeline");
        let mut got: Vec<u64> = pipe.iter().flatten().collect();
        got.sort_unstable();
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(got, (0..n).map(|x| x * 3 + 1).collect::<Vec<_>>());
        assert_balanced(&r);
        assert_eq!(r.shards, 2);
        // The shards' usage while the pipeline ran (the caller's task included).
        let wall = t.elapsed();
        assert_eq!(r.shard_usage.iter().map(|u| u.id).collect::<Vec<_>>(), [0, 1]);
        for u in &r.shard_usage {
            assert!(u.tasks_run > 0, "every shard ran pipeline tasks: {u:?}");
            let span = u.busy + u.idle;
            assert!(!span.is_zero() && span <= wall, "{u:?} within the pipeline's {wall:?}");
        }
    }
    let before = ticks.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20));
    assert!(ticks.load(Ordering::Relaxed) > before, "the caller's task still runs after the pipelines");
    stop.store(true, Ordering::Relaxed);
    own.join().expect("the caller's task ends");
}

#[test]
fn two_pipelines_at_once_on_one_runtime_each_get_their_own_items() {
    let Some(rt) = shared() else { return };
    let consumers: Vec<_> = (0..2u64)
        .map(|k| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                let b = source(k * 1_000_000..k * 1_000_000 + 30_000).path_variants(
                    |x: &u64| (*x % 2) as usize,
                    [path(|p| p.map(|x| x + 1)), path(|p| p.pipe_blocking(|x: u64| Ok::<_, String>(x + 1)))],
                );
                let mut pipe = b.build_on(&rt).expect("pipeline");
                let mut got: Vec<u64> = pipe.iter().collect();
                got.sort_unstable();
                assert_balanced(&pipe.finish().expect("no failure limit"));
                got
            })
        })
        .collect();
    for (k, c) in consumers.into_iter().enumerate() {
        let k = k as u64;
        let want: Vec<u64> = (k * 1_000_000 + 1..=k * 1_000_000 + 30_000).collect();
        assert_eq!(c.join().expect("consumer"), want, "pipeline {k}");
    }
}

#[test]
fn a_pipeline_dropped_mid_stream_leaves_the_shared_shards_working() {
    let Some(rt) = shared() else { return };
    let mut pipe = chain(u64::MAX).build_on(&rt).expect("pipeline");
    let first: Vec<Vec<u64>> = pipe.iter().take(10).collect();
    assert_eq!(first.len(), 10);
    drop(pipe);
    // Its tasks are gone: the shards run the next pipeline and plain tasks as before.
    let mut pipe = chain(5_000).build_on(&rt).expect("pipeline");
    assert_eq!(pipe.iter().map(|b| b.len()).sum::<usize>(), 5_000);
    assert_eq!(rt.run_on(1, || async { 7 }).expect("spawn").join().expect("task"), 7);
    // The runtime outlives every pipeline built on it, and stops when its last owner drops it.
    drop(pipe);
    let rt = Arc::try_unwrap(rt).expect("no pipeline holds the runtime any more");
    assert_eq!(rt.shutdown().len(), 2);
}

#[test]
fn trace_and_impossible_placements_are_refused_on_a_shared_runtime() {
    let Some(rt) = shared() else { return };
    let err = chain(10).trace().build_on(&rt).expect_err("trace needs shards of its own");
    assert!(matches!(err, PipelineBuildError::TraceOnSharedRuntime), "{err}");
    assert!(err.to_string().contains("use build(placement)"), "{err}");
    // A stage pinned to a shard the runtime does not have.
    let err = source(0..10u64).map(|x| x).on_shards([5]).build_on(&rt).expect_err("no shard 5");
    assert!(err.to_string().contains('5'), "{err}");
}

#[test]
fn a_pipeline_on_a_shared_runtime_can_move_to_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let Some(rt) = shared() else { return };
    let pipe = chain(1000).build_on(&rt).expect("pipeline");
    assert_send(&pipe);
    let items = std::thread::spawn(move || {
        let mut pipe = pipe;
        pipe.iter().map(|b| b.len()).sum::<usize>()
    });
    assert_eq!(items.join().expect("consumer"), 1000);
}

#[test]
fn waiting_on_a_pipeline_from_a_task_on_its_own_shards_panics_with_the_fix_instead_of_hanging() {
    let Some(rt) = shared() else { return };
    let inner = rt.clone();
    let task = rt
        .run_on(0, move || async move {
            let mut pipe = chain(10_000).build_on(&inner).expect("pipeline");
            pipe.iter().map(|b| b.len()).sum::<usize>()
        })
        .expect("spawn");
    let err = task.join().expect_err("the consumer must not block its own shard");
    assert!(err.to_string().contains("iterate it from a plain thread"), "{err}");
    // The shard lived on, and the dropped pipeline's stages wound down.
    let mut pipe = chain(5_000).build_on(&rt).expect("pipeline");
    assert_eq!(pipe.iter().map(|b| b.len()).sum::<usize>(), 5_000);
}
