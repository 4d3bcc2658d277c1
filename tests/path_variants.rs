//! `path_variants` (SPDL's routing to sub-chains) in every placement: outputs, the account,
//! router failures, epochs across paths, nesting, backpressure, and build errors.

mod common;

use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{PipelineBuilder, Placement, merge_pipelines, path, source, source_epochs, sub_pipeline};
use shardpipe::time::sleep;

/// Three paths of different kinds: a cheap map, an async op that filters, and a batch-and-split.
fn three_paths(n: u64) -> PipelineBuilder<u64> {
    source(0..n).map(|x| x + 1).path_variants(
        |x: &u64| (*x % 3) as usize,
        [
            path(|p| p.map(|x| x * 10)),
            path(|p| {
                p.pipe_async(|x| async move {
                    if x % 50 == 1 {
                        sleep(Duration::from_micros(30)).await;
                    }
                    (x % 2 == 0).then_some(x)
                })
                .concurrency(8)
            }),
            path(|p| {
                p.aggregate(16).pipe_blocking(|b: Vec<u64>| Ok::<_, String>(b)).disaggregate().map(|x| x + 1_000_000)
            }),
        ],
    )
}

fn expected(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n)
        .map(|x| x + 1)
        .filter_map(|x| match x % 3 {
            0 => Some(x * 10),
            1 => (x % 2 == 0).then_some(x),
            _ => Some(x + 1_000_000),
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn every_placement_yields_what_each_path_makes_and_accounts_for_every_item() {
    let n = 30_000;
    for p in PLACEMENTS {
        let Some(mut pipe) = start(three_paths(n), p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(got, expected(n), "{p:?}");
        assert_balanced(&r);
        let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "source",
                "map1",
                "path_variants2",
                "path0/map3",
                "path1/pipe_async4",
                "path2/aggregate5",
                "path2/pipe_blocking6",
                "path2/disaggregate7",
                "path2/map8",
                "sink"
            ],
            "{p:?}"
        );
        let stage = |name: &str| &r.stages.iter().find(|s| s.name == name).expect(name).stats;
        assert_eq!(stage("path_variants2").received, n);
        // Each path received exactly the items routed to it.
        for (name, k) in [("path0/map3", 0), ("path1/pipe_async4", 1), ("path2/aggregate5", 2)] {
            assert_eq!(stage(name).received, (1..=n).filter(|x| x % 3 == k).count() as u64, "{p:?} {name}");
        }
        assert_eq!(r.account.filtered, (1..=n).filter(|x| x % 3 == 1 && x % 2 == 1).count() as u64);
        assert_eq!(r.account.delivered, got.len() as u64);
    }
}

#[test]
fn a_router_that_names_no_path_or_panics_fails_that_item_only() {
    for p in PLACEMENTS {
        let b = source(0..1000u64)
            .path_variants(
                |x: &u64| match x % 10 {
                    9 => panic!("no route for {x}"),
                    8 => 5,
                    k => (k % 2) as usize,
                },
                [path(|p| p.map(|x| x * 2)), path(|p| p)],
            )
            .name("route");
        let Some(mut pipe) = start(b, p) else { return };
        let got = pipe.iter().count();
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(got, 800, "{p:?}");
        assert_eq!(r.account.failed, 200);
        assert_balanced(&r);
        let route = r.stages.iter().find(|s| s.name == "route").expect("the router is named by .name()");
        assert_eq!(route.stats.failures, 200);
        let samples = route.failure_samples.join("\n");
        assert!(samples.contains("the router chose path 5, but there are 2 (0 to 1)"), "{samples}");
        assert!(samples.contains("router panicked: no route for"), "{samples}");
    }
}

#[test]
fn a_failure_limit_inside_a_path_names_that_stage_and_the_account_still_balances() {
    for p in PLACEMENTS {
        let b = source(0..5000u64).path_variants(
            |x: &u64| (*x % 2) as usize,
            [
                // Slow, so its queue is full when path 1 trips: those items must still arrive.
                path(|p| {
                    p.pipe_async(|x| async move {
                        sleep(Duration::from_micros(100)).await;
                        Some(x)
                    })
                    .concurrency(2)
                }),
                path(|p| {
                    p.pipe(|x: u64| if x > 3001 { Err(format!("bad {x}")) } else { Ok(x) })
                        .name("strict")
                        .max_failures(3)
                }),
            ],
        );
        let Some(mut pipe) = start(b, p) else { return };
        let got = pipe.iter().count();
        let err = pipe.finish().expect_err("path 1 exceeds its limit");
        let failed: Vec<&str> = err.error.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(failed, ["path1/strict"], "{p:?}");
        assert_balanced(&err.report);
        assert_eq!(got as u64, err.report.account.delivered);
        if !matches!(p, Placement::Sharded { shards: 0 }) {
            // One loop routes in source order, and the sibling path drains after the cancel:
            // everything up to the first failure (3003) reaches the consumer.
            assert!(got >= 3002, "{p:?}: items before the first failure were delivered ({got})");
        }
        assert!(
            err.report.account.discarded > 0 || err.report.account.produced < 5000,
            "{p:?}: upstream was cancelled"
        );
    }
}

#[test]
fn each_epoch_ends_only_after_every_path_delivered_its_items() {
    for p in PLACEMENTS {
        // Path 1 is slow, so without the join's epoch gathering its items would spill into the
        // next epoch.
        let b = source_epochs(|e| (e < 3).then(|| (0..600u64).map(move |x| x + 10_000 * e))).path_variants(
            |x: &u64| usize::from((*x).is_multiple_of(4)),
            [
                path(|p| p.map(|x| x + 1)),
                path(|p| {
                    p.pipe_async(|x| async move {
                        sleep(Duration::from_micros(200)).await;
                        Some(x + 1)
                    })
                    .concurrency(4)
                }),
            ],
        );
        let Some(mut pipe) = start(b, p) else { return };
        for e in 0..3u64 {
            let mut items: Vec<u64> = pipe.epoch().collect();
            items.sort_unstable();
            assert_eq!(items, (0..600).map(|x| x + 1 + 10_000 * e).collect::<Vec<_>>(), "{p:?} epoch {e}");
        }
        assert_eq!(pipe.epoch().count(), 0);
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn paths_nest_and_an_empty_path_passes_items_through() {
    for p in PLACEMENTS {
        let b = source(0..3000u64).path_variants(
            |x: &u64| usize::from(*x >= 1000),
            [
                path(|p| p),
                path(|p| {
                    p.path_variants(
                        |x: &u64| usize::from(*x >= 2000),
                        [path(|q| q.map(|x| x + 100_000)), path(|q| q.pipe_iter(|x| [x + 200_000, x + 300_000]))],
                    )
                }),
            ],
        );
        let Some(mut pipe) = start(b, p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let mut want: Vec<u64> = (0..1000).chain((1000..2000).map(|x| x + 100_000)).collect();
        want.extend((2000..3000).flat_map(|x| [x + 200_000, x + 300_000]));
        want.sort_unstable();
        assert_eq!(got, want, "{p:?}");
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert!(r.stages.iter().any(|s| s.name == "path1/path1/pipe_iter4"), "nested names: {r}");
    }
}

#[test]
fn a_slow_consumer_holds_every_path_within_the_bound() {
    for p in PLACEMENTS {
        let (items, pulled) = common::counted(20_000);
        let b = source(items)
            .path_variants(|x: &u64| (*x % 2) as usize, [path(|p| p.map(|x| x * 2)), path(|p| p.pipe_blocking(Some))])
            .aggregate(32);
        let Some(pipe) = start(b, p) else { return };
        let (_, report) = common::drain_slowly_within_the_bound(pipe, &pulled, &format!("{p:?}"));
        assert_balanced(&report);
    }
}

#[test]
fn no_path_and_pinning_inside_a_path_are_refused_with_the_fix() {
    let none = source(0..10u64).path_variants(|_: &u64| 0, Vec::<shardpipe::pipeline::Path<u64, u64>>::new());
    let e = none.build(Placement::Sharded { shards: 1 }).expect_err("no path");
    assert!(e.to_string().contains("a router needs at least one path"), "{e}");

    let early = source(0..10u64).path_variants(|_: &u64| 0, [path(|p| p.name("x").map(|x| x))]);
    let e = early.build(Placement::Sharded { shards: 1 }).expect_err("an option before the path's first stage");
    assert!(e.to_string().contains("before the path's first stage"), "{e}");

    let pinned = source(0..10u64).path_variants(|_: &u64| 0, [path(|p| p.map(|x| x).name("w").on_shards([0]))]);
    let e = pinned.build(Placement::Sharded { shards: 1 }).expect_err("on_shards inside a path");
    assert!(e.to_string().contains("stage 'path0/w': on_shards cannot be set inside a path"), "{e}");
}

#[test]
fn the_router_may_be_pinned_and_its_paths_follow_it() {
    for p in PLACEMENTS {
        let b = source(0..4000u64)
            .path_variants(
                |x: &u64| (*x % 2) as usize,
                [
                    path(|p| p.map(|x| (x, shardpipe::current_shard()))),
                    path(|p| p.map(|x| (x, shardpipe::current_shard()))),
                ],
            )
            .on_shards([0])
            .map(|(x, s)| (x + 1, s));
        let Some(mut pipe) = start(b, p) else { return };
        let got: Vec<(u64, Option<usize>)> = pipe.iter().collect();
        assert!(got.iter().all(|&(_, s)| s == Some(0)), "{p:?}: a path ran off its router's shard");
        assert_eq!(got.len(), 4000);
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn merged_sub_pipelines_of_different_item_types_feed_the_stages_after_them() {
    for p in PLACEMENTS {
        let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
        let b = merge_pipelines([
            sub_pipeline(words, |p| p.pipe(|w: String| w[1..].parse::<u64>().ok()).name("parse")),
            sub_pipeline(0..3000u64, |p| {
                p.pipe_async(|x| async move { (x % 3 != 0).then_some(x + 10_000) }).concurrency(4)
            }),
            sub_pipeline(vec![7u8; 500], |p| p.map(u64::from).pipe(|x: u64| if x == 7 { Err("seven") } else { Ok(x) })),
        ])
        .map(|x| x * 2);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let mut want: Vec<u64> =
            (0..2000).chain((0..3000).filter(|x| x % 3 != 0).map(|x| x + 10_000)).map(|x| x * 2).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{p:?}");
        let r = pipe.finish().expect("no failure limit");
        assert_balanced(&r);
        assert_eq!((r.account.produced, r.account.failed), (5500, 500), "{p:?}");
        let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
        for name in ["merge1", "sub0/input", "sub0/parse", "sub1/input", "sub2/input"] {
            assert!(names.contains(&name), "{p:?}: no stage {name} in {names:?}");
        }
    }
}

#[test]
fn stopping_or_dropping_mid_run_ends_every_path_and_accounts_for_what_was_in_flight() {
    let endless = || {
        source(0..u64::MAX).path_variants(
            |x: &u64| (*x % 3) as usize,
            [
                path(|p| p.map(|x| x + 1)),
                path(|p| p.pipe_async(|x| async move { Some(x) }).concurrency(4)),
                path(|p| p.pipe_blocking(Some).aggregate(4).disaggregate()),
            ],
        )
    };
    for p in PLACEMENTS {
        let Some(mut pipe) = start(endless(), p) else { return };
        for _ in 0..1000 {
            pipe.recv().expect("an endless source");
        }
        pipe.stop();
        assert_eq!(pipe.recv_timeout(Duration::ZERO), Err(shardpipe::pipeline::RecvTimeoutError::Ended));
        let r = pipe.report().expect("stopped pipelines report").clone();
        assert_balanced(&r);
        assert_eq!(r.account.delivered, 1000, "{p:?}");
        assert!(r.account.discarded > 0, "{p:?}: something was in flight");
        // Dropped without a stop: every thread ends (the drop joins them).
        let Some(mut pipe) = start(endless(), p) else { return };
        pipe.recv().expect("an endless source");
        drop(pipe);
    }
}

#[test]
fn an_async_router_awaits_its_lookup_and_fails_items_it_cannot_route() {
    for p in PLACEMENTS {
        let b = source(0..2000u64)
            .path_variants_async(
                |x: &u64| {
                    let x = *x;
                    async move {
                        // A lookup that waits (a cache service, say).
                        if x.is_multiple_of(100) {
                            sleep(Duration::from_micros(50)).await;
                        }
                        assert!(x != 1999, "lookup of {x} failed");
                        if x % 500 == 7 { 9 } else { usize::from(x % 2 == 1) }
                    }
                },
                [path(|p| p.map(|x| x + 1)), path(|p| p.map(|x| x + 2))],
            )
            .name("lookup")
            .concurrency(16);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let mut want: Vec<u64> =
            (0..1999u64).filter(|x| x % 500 != 7).map(|x| if x % 2 == 1 { x + 2 } else { x + 1 }).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{p:?}");
        let r = pipe.finish().expect("no failure limit");
        assert_balanced(&r);
        let failures = |name: &str| r.stages.iter().find(|s| s.name == name).map(|s| s.stats.failures);
        assert_eq!(failures("lookup"), Some(1), "{p:?}: the panic");
        assert_eq!(failures("path_variants2"), Some(4), "{p:?}: index 9 of 2 paths");
        assert!(r.stages.iter().any(|s| s.name == "path1/input"));
    }
}
