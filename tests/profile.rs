//! `profile` (SPDL's profiling mode): every stage alone at concurrencies 32 … 1, in every
//! placement.

mod common;

use std::time::Duration;

use common::PLACEMENTS;

use shardpipe::pipeline::{PipelineBuildError, PipelineBuilder, Placement, Profile, ProfileError, path, source};
use shardpipe::time::sleep;

fn loader() -> PipelineBuilder<Vec<u64>> {
    source(0..100_000u64)
        .map(|x| x + 1)
        .name("parse")
        .pipe_async(|x| async move {
            sleep(Duration::from_millis(1)).await;
            Some(x)
        })
        .name("read")
        .concurrency(8)
        .pipe(|x: u64| if x % 10 == 0 { Err(format!("bad {x}")) } else { Ok(x) })
        .name("check")
        .max_failures(0)
        .aggregate(16)
}

/// Runs `profile`, or prints why io_uring is unavailable and returns `None` (the test skips).
fn profile<T: Send + 'static>(b: PipelineBuilder<T>, n: usize, p: Placement) -> Option<Profile> {
    match b.profile(n, p) {
        Ok(profile) => Some(profile),
        Err(ProfileError::Build(PipelineBuildError::Runtime(shardpipe::BuildError::Uring(e)))) => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("profile failed: {e}"),
    }
}

#[test]
fn every_stage_runs_alone_and_an_async_stage_at_every_concurrency() {
    for p in PLACEMENTS {
        let Some(prof) = profile(loader(), 100, p) else { return };
        let names: Vec<&str> = prof.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["source", "parse", "read", "check", "aggregate4"], "{p:?}");
        let stage = |name: &str| prof.stages.iter().find(|s| s.name == name).expect(name);

        let src = &stage("source").levels;
        assert_eq!((src.len(), src[0].items), (1, 500), "{p:?}: the source makes items for all five levels");
        let parse = &stage("parse").levels;
        assert_eq!((parse.len(), parse[0].items, parse[0].concurrency), (1, 500, 1), "{p:?}: an inline op runs once");

        let read = &stage("read").levels;
        let levels: Vec<(usize, u64, u64)> = read.iter().map(|l| (l.concurrency, l.items, l.outputs)).collect();
        assert_eq!(levels, [(32, 100, 100), (16, 100, 100), (8, 100, 100), (4, 100, 100), (1, 100, 100)], "{p:?}");
        // 1 ms per item: one at a time takes 100 ms, 32 at a time a few. A ratio within one run.
        let (wide, narrow) = (&read[0], &read[4]);
        assert!(wide.items_per_sec > 4.0 * narrow.items_per_sec, "{p:?}: {prof}");
        assert!(stage("read").best().is_some_and(|l| l.concurrency >= 8), "{prof}");
        assert!(read.iter().all(|l| l.task_p50_ns >= 1_000_000), "{p:?}: each call sleeps 1 ms: {prof}");

        // The failure limit (0) is lifted: every failure is counted and the run goes on.
        let check = &stage("check").levels;
        // (On two shards the 500 items collected are whichever arrived first: about a tenth fail.)
        let c = &check[0];
        assert_eq!((c.items, c.failures + c.outputs), (500, 500), "{p:?}");
        assert!((40..=60).contains(&c.failures), "{p:?}: {prof}");
        let agg = &stage("aggregate4").levels;
        assert_eq!(agg[0].items, c.outputs);
        assert!(agg[0].outputs >= c.outputs / 16, "{p:?}");
        let text = prof.to_string();
        assert!(text.contains("read") && text.contains("concurrency 32") && text.contains('*'), "{text}");
    }
}

#[test]
fn a_short_source_shares_what_it_has_and_a_stage_left_no_input_says_so() {
    let b = source(0..30u64).pipe(|_x| None::<u64>).name("drop_all").pipe_async(|x| async move { Some(x) });
    let Some(prof) = profile(b, 100, Placement::Sharded { shards: 1 }) else { return };
    assert_eq!(prof.stages[0].levels[0].items, 30);
    assert_eq!(prof.stages[1].levels[0].outputs, 0);
    assert!(prof.stages[2].levels.is_empty());
    assert!(prof.to_string().contains("no input"), "{prof}");
}

#[test]
fn paths_and_zero_items_are_refused_with_the_fix() {
    let b = source(0..10u64).path_variants(|_: &u64| 0, [path(|p| p.map(|x| x))]);
    let e = b.profile(10, Placement::Sharded { shards: 1 }).expect_err("paths cannot be profiled yet");
    assert!(e.to_string().contains("stage 'path_variants1': profile cannot run path_variants"), "{e}");
    let e = source(0..10u64).map(|x| x).profile(0, Placement::Sharded { shards: 1 }).expect_err("0 items");
    assert!(e.to_string().contains("items_per_level must be at least 1"), "{e}");
}
