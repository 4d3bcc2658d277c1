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
        .pipe(|x: u64| if x.is_multiple_of(10) { Err(format!("bad {x}")) } else { Ok(x) })
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
        // 1 ms per item: one at a time takes 100 ms, 32 at a time a few. A ratio within one run,
        // with room for a loaded machine: under a CPU hog on the fallback driver the wide level's
        // sleeps ended ~4 ms late (the scheduler tick) and it ran only 3.9× the narrow one.
        let (wide, narrow) = (&read[0], &read[4]);
        assert!(wide.items_per_sec > 2.0 * narrow.items_per_sec, "{p:?}: {prof}");
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
        // `read` (1 ms per item) limits this pipeline by far, and the table says so.
        assert_eq!(prof.bottleneck().map(|b| b.0), Some("read"), "{prof}");
        let text = prof.to_string();
        assert!(text.contains("concurrency 32") && text.contains("slowest stage at its best: read"), "{text}");
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
fn each_path_runs_alone_on_the_items_routed_to_it() {
    let b = source(0..1000u64)
        .path_variants(
            |x: &u64| if *x % 10 == 9 { 7 } else { usize::from(*x % 10 < 3) },
            [
                path(|p| p.map(|x| x + 1)),
                path(|p| {
                    p.pipe_async(|x| async move { Some(x) }).name("slow").path_variants(|_: &u64| 0, [path(|q| q)])
                }),
            ],
        )
        .name("route")
        .map(|x| x * 2)
        .name("after");
    let Some(prof) = profile(b, 100, Placement::Sharded { shards: 1 }) else { return };
    let stage =
        |name: &str| &prof.stages.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}: {prof}")).levels;
    let route = &stage("route")[0];
    assert_eq!((route.items, route.outputs, route.failures), (500, 450, 50), "{prof}");
    let total = |levels: &[shardpipe::pipeline::ProfileLevel]| levels.iter().map(|l| l.items).sum::<u64>();
    assert_eq!(total(stage("path0/map2")), 300, "x % 10 in 3..9 of the 500 source items: {prof}");
    assert_eq!(total(stage("path1/slow")), 150, "{prof}");
    assert_eq!(stage("path1/slow").len(), 5, "an async stage in a path runs at every level");
    assert_eq!(total(stage("after")), 450, "every path's outputs reach the stage after: {prof}");
}

#[test]
fn zero_items_are_refused_with_the_fix() {
    let e = source(0..10u64).map(|x| x).profile(0, Placement::Sharded { shards: 1 }).expect_err("0 items");
    assert!(e.to_string().contains("items_per_level must be at least 1"), "{e}");
}

#[test]
fn merged_sub_pipelines_profile_like_paths() {
    let b = shardpipe::pipeline::merge_pipelines([
        shardpipe::pipeline::sub_pipeline(0..200u64, |p| p.map(|x| x + 1)),
        shardpipe::pipeline::sub_pipeline(vec![1u8; 100], |p| p.map(u64::from)),
    ]);
    let Some(prof) = profile(b, 20, Placement::single_loop()) else { return };
    let items =
        |name: &str| prof.stages.iter().find(|s| s.name == name).map(|s| s.levels.iter().map(|l| l.items).sum::<u64>());
    assert_eq!(items("source"), Some(100), "five levels of 20: {prof}");
    assert_eq!(items("merge1"), Some(100));
    assert_eq!(items("sub0/input").unwrap() + items("sub1/input").unwrap(), 100, "{prof}");
}
