//! Dropping a running pipeline joins every thread it started. Alone in its own test binary, so
//! no other test's shards are alive while the threads are counted.

use std::time::Duration;

use shardpipe::BuildError;
use shardpipe::pipeline::{PipelineBuildError, Placement, source};
use shardpipe::time::sleep;

fn pipeline_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("offload") || n.starts_with("shard"))
        .collect()
}

#[test]
fn dropping_a_running_pipeline_joins_its_threads() {
    for p in [Placement::single_loop(), Placement::sharded()] {
        let b = source(0..u64::MAX)
            .pipe_async(|x| async move {
                sleep(Duration::from_micros(100)).await;
                Some(x)
            })
            .concurrency(16)
            .pipe_blocking(Some);
        let mut pipe = match b.build(p) {
            Ok(pipe) => pipe,
            Err(PipelineBuildError::Runtime(BuildError::Uring(e))) => {
                eprintln!("SKIPPED: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        pipe.recv().expect("an endless source");
        assert!(!pipeline_threads().is_empty(), "the pipeline's threads are visible while it runs");
        drop(pipe);
        assert_eq!(pipeline_threads(), Vec::<String>::new(), "{p:?}: threads left after drop");
    }
}
