//! `path_variants_batched` (SPDL 0.7's `batched=True`): the router sees whole batches, each path
//! gets sub-batches. In every placement: outputs, per-item accounting and latencies through the
//! split, whole-batch failures, epochs, and the profile.

mod common;

use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{PipelineBuilder, Placement, path, source, source_epochs};
use shardpipe::time::sleep;

/// Batches of 32; multiples of 3 take path 0 (×10), the rest path 1 (+1,000,000).
fn split_by_three(n: u64) -> PipelineBuilder<u64> {
    source(0..n).aggregate(32).path_variants_batched(
        |batch: &[u64]| batch.iter().map(|x| usize::from(x % 3 != 0)).collect(),
        [
            path(|p| p.map(|b: Vec<u64>| b.into_iter().map(|x| x * 10).collect::<Vec<_>>()).disaggregate()),
            path(|p| p.disaggregate().map(|x: u64| x + 1_000_000)),
        ],
    )
}

#[test]
fn every_placement_routes_each_item_of_a_batch_to_its_path_and_accounts_per_item() {
    let n = 20_000;
    let mut want: Vec<u64> = (0..n).map(|x| if x % 3 == 0 { x * 10 } else { x + 1_000_000 }).collect();
    want.sort_unstable();
    for p in PLACEMENTS {
        let Some(mut pipe) = start(split_by_three(n), p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(got, want, "{p:?}");
        assert_balanced(&r);
        assert_eq!(r.account.delivered, n, "{p:?}");
        // No stamp lost or doubled by the split: one latency per source item.
        assert_eq!(r.latency.count, n, "{p:?}");
        let stage = |name: &str| &r.stages.iter().find(|s| s.name == name).expect(name).stats;
        let batches = stage("aggregate1").emitted;
        assert_eq!(stage("path_variants2").received, batches, "{p:?}");
        // Each batch of 32 consecutive numbers holds both kinds: one sub-batch per path.
        assert_eq!(stage("path0/map3").received, batches, "{p:?}");
        assert_eq!(stage("path1/disaggregate5").received, batches, "{p:?}");
        assert_eq!(stage("path0/disaggregate4").emitted, (0..n).filter(|x| x % 3 == 0).count() as u64, "{p:?}");
    }
}

#[test]
fn a_sub_batch_keeps_the_order_of_its_items_in_the_batch() {
    let b = source(0..4096u64).aggregate(64).ordered().path_variants_batched(
        |batch: &[u64]| batch.iter().map(|x| (x % 2) as usize).collect(),
        [path(|p| p), path(|p| p)],
    );
    let Some(mut pipe) = start(b, Placement::single_loop()) else { return };
    let subs: Vec<Vec<u64>> = pipe.iter().collect();
    assert_eq!(subs.len(), 128);
    for s in &subs {
        assert_eq!(s.len(), 32);
        assert!(s.windows(2).all(|w| w[1] == w[0] + 2), "{s:?}");
    }
    assert_balanced(&pipe.finish().expect("no failure limit"));
}

#[test]
fn a_router_that_answers_wrongly_or_panics_fails_its_whole_batch_with_the_reason() {
    for p in PLACEMENTS {
        // The router's answer follows its call count, not the batch's items: sharded, which
        // items share a batch depends on how the source dealt them. 100 batches of 10: ten of
        // each wrong answer.
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let b = source(0..1000u64)
            .aggregate(10)
            .path_variants_batched(
                move |batch: &[u64]| match calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10 {
                    7 => panic!("no route for batch {}", batch[0]),
                    8 => vec![0; batch.len() - 1],
                    9 => batch.iter().map(|_| 4).collect(),
                    _ => batch.iter().map(|x| (x % 2) as usize).collect(),
                },
                [path(|p| p), path(|p| p)],
            )
            .name("route");
        let Some(mut pipe) = start(b, p) else { return };
        let got: usize = pipe.iter().map(|sub| sub.len()).sum();
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(got, 700, "{p:?}");
        assert_eq!(r.account.failed, 300, "every item of a failed batch counts: {p:?}");
        assert_balanced(&r);
        let route = r.stages.iter().find(|s| s.name == "route").expect("the router is named by .name()");
        assert_eq!(route.stats.failures, 30, "one failure per batch: {p:?}");
        let samples = route.failure_samples.join("\n");
        assert!(samples.contains("router panicked: no route for batch"), "{samples}");
        assert!(samples.contains("returned 9 path indices for a batch of 10 items"), "{samples}");
        assert!(samples.contains("chose path 4 for item 0 of the batch, but there are 2 (0 to 1)"), "{samples}");
    }
}

#[test]
fn empty_batches_are_counted_filtered_and_epochs_pass_every_path() {
    for p in PLACEMENTS {
        // A custom op makes empty batches (items 0..10 of each pass go nowhere).
        let b = source_epochs(|e| (e < 3).then_some(0..100u64))
            .aggregate(10)
            .pipe(|b: Vec<u64>| Some(if b[0] == 0 { Vec::new() } else { b }))
            .path_variants_batched(
                |batch: &[u64]| batch.iter().map(|x| (x % 2) as usize).collect(),
                [path(|p| p), path(|p| p)],
            );
        let Some(mut pipe) = start(b, p) else { return };
        let mut per_epoch = Vec::new();
        for _ in 0..3 {
            per_epoch.push(pipe.epoch().map(|sub| sub.len()).sum::<usize>());
        }
        let r = pipe.finish().expect("no failure limit");
        assert_eq!(per_epoch, vec![90, 90, 90], "{p:?}");
        assert_eq!(r.account.filtered, 30, "{p:?}");
        assert_balanced(&r);
    }
}

#[test]
fn the_profile_splits_batches_over_the_paths_in_place() {
    let profile = split_by_three(3200).profile(500, Placement::single_loop()).expect("profile");
    let router = profile.stages.iter().find(|s| s.name == "path_variants2").expect("the router is profiled");
    let level = router.best().expect("one level");
    assert_eq!(level.outputs, 2 * level.items, "every batch splits in two");
    assert_eq!(level.failures, 0);
    let path0 = profile.stages.iter().find(|s| s.name == "path0/map3").expect("path 0 is profiled");
    assert_eq!(path0.best().expect("a level").items, level.items);
}

#[test]
fn an_async_batched_router_awaits_then_splits_and_its_wrong_answers_fail_at_the_split() {
    let n = 6400u64;
    for p in PLACEMENTS {
        let b = source(0..n)
            .aggregate(32)
            .path_variants_batched_async(
                |batch: &[u64]| {
                    let first = batch[0];
                    let chosen: Vec<usize> = batch.iter().map(|x| (x % 2) as usize).collect();
                    async move {
                        sleep(Duration::from_micros(50)).await;
                        // Batch 3 gets one index too few.
                        if first == 96 { chosen[1..].to_vec() } else { chosen }
                    }
                },
                [path(|p| p.disaggregate().map(|x: u64| x * 10)), path(|p| p.disaggregate())],
            )
            .concurrency(16);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let r = pipe.finish().expect("no failure limit");
        let mut want: Vec<u64> =
            (0..n).filter(|x| !(96..128).contains(x)).map(|x| if x % 2 == 0 { x * 10 } else { x }).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{p:?}");
        assert_eq!(r.account.failed, 32, "{p:?}");
        assert_balanced(&r);
        let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "source",
                "aggregate1",
                "route_async2",
                "path_variants3",
                "path0/input",
                "path0/disaggregate5",
                "path0/map6",
                "path1/input",
                "path1/disaggregate8",
                "sink"
            ],
            "{p:?}"
        );
        let split = r.stages.iter().find(|s| s.name == "path_variants3").expect("the split");
        assert_eq!(split.stats.failures, 1, "{p:?}");
        assert!(
            split.failure_samples[0].contains("returned 31 path indices for a batch of 32"),
            "{:?}",
            split.failure_samples
        );
    }
}

mod random {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any item count, batch size, path count and routing: every item comes out once, from
        /// its own path (path `k` adds `k` million and drops multiples of `7 + k`), and the
        /// account balances.
        #[test]
        fn any_batched_routing_delivers_each_item_once_from_its_path(
            n in 0u64..3000,
            batch in 1usize..70,
            paths in 1usize..5,
            salt in 0u64..1000,
            placement in 0usize..PLACEMENTS.len(),
        ) {
            let route = move |x: u64| ((x.wrapping_mul(2_654_435_761) ^ salt) % paths as u64) as usize;
            let b = source(0..n).aggregate(batch).path_variants_batched(
                move |b: &[u64]| b.iter().map(|&x| route(x)).collect(),
                (0..paths as u64).map(|k| {
                    path(move |p: PipelineBuilder<Vec<u64>>| {
                        p.disaggregate().pipe(move |x: u64| (!x.is_multiple_of(7 + k)).then_some(x + k * 1_000_000))
                    })
                }),
            );
            let Some(mut pipe) = start(b, PLACEMENTS[placement]) else { return Ok(()) };
            let mut got: Vec<u64> = pipe.iter().collect();
            got.sort_unstable();
            let r = pipe.finish().expect("no failure limit");
            let mut want: Vec<u64> = (0..n)
                .filter_map(|x| {
                    let k = route(x) as u64;
                    (x % (7 + k) != 0).then_some(x + k * 1_000_000)
                })
                .collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
            assert_balanced(&r);
            prop_assert_eq!(r.account.produced, n);
        }
    }
}
