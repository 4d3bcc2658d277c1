//! `source_indexed`: every shard makes its own items. In every placement: the same items as
//! `source`, source order when ordered, the pass length, a panic in the item function, an early
//! stop, an empty source, the options that do not apply, and that both shards make items.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{PipelineBuildError, Placement, RecvTimeoutError, source, source_indexed};

#[test]
fn the_same_items_as_an_iterator_source_in_every_placement() {
    for p in PLACEMENTS {
        let b =
            source_indexed(10_000, |i| i * 3).map(|x| x + 1).pipe_blocking(|x| (x % 7 != 0).then_some(x)).aggregate(64);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got: Vec<u64> = pipe.iter().flatten().collect();
        got.sort_unstable();
        let want: Vec<u64> = (0..10_000u64).map(|i| i * 3 + 1).filter(|x| x % 7 != 0).collect();
        assert_eq!(got, want, "{p:?}");
        let r = pipe.finish().expect("no failures");
        assert_eq!(r.account.produced, 10_000, "{p:?}");
        assert_eq!(r.account.filtered, 10_000 - want.len() as u64, "{p:?}");
        assert_balanced(&r);
    }
}

#[test]
fn an_ordered_pipeline_keeps_source_order() {
    // The source makes chunks of 32 indices: a short last chunk, whole chunks only (the last
    // one a shard's other than the first's), and fewer items than one chunk.
    for (p, len) in PLACEMENTS.into_iter().flat_map(|p| [(p, 1000u64), (p, 992), (p, 5)]) {
        let b = source_indexed(len, |i| i).pipe_async(|x| async move { Some(x * 2) }).concurrency(8).ordered();
        let Some(mut pipe) = start(b, p) else { return };
        let got: Vec<u64> = pipe.iter().collect();
        assert_eq!(got, (0..len).map(|x| x * 2).collect::<Vec<_>>(), "{p:?}, {len} items");
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn every_shard_makes_items_and_the_pass_length_is_known() {
    let Some(mut pipe) = start(
        source_indexed(20_000, |i| (i, std::thread::current().name().map(String::from))).pipe_blocking(|x| {
            // Long enough that one shard cannot make every item before the other starts.
            std::thread::sleep(Duration::from_micros(20));
            Some(x)
        }),
        Placement::Sharded { shards: 2 },
    ) else {
        return;
    };
    let mut makers = std::collections::BTreeSet::new();
    let mut n = 0;
    while let Ok((_, maker)) = pipe.recv_timeout(Duration::from_secs(60)) {
        makers.insert(maker.expect("shard threads are named"));
        n += 1;
        if n == 1 {
            assert_eq!(pipe.progress().len, Some(20_000));
        }
    }
    assert_eq!(n, 20_000);
    assert_eq!(makers.into_iter().collect::<Vec<_>>(), ["shard-0", "shard-1"]);
}

#[test]
fn a_panic_in_the_item_function_fails_the_pipeline_and_names_the_source() {
    for p in PLACEMENTS {
        let b = source_indexed(1000, |i| {
            assert!(i != 500, "item {i} broke");
            i
        });
        let Some(mut pipe) = start(b, p) else { return };
        let got = pipe.iter().count();
        assert!(got < 1000, "{p:?}: {got}");
        let err = pipe.finish().expect_err("a broken source is a failure");
        assert!(err.to_string().contains("'source'") && err.to_string().contains("item 500 broke"), "{err}");
        assert_balanced(&err.report);
    }
}

#[test]
fn stopping_early_ends_every_shards_source_and_the_account_balances() {
    for p in PLACEMENTS {
        let made = Arc::new(AtomicU64::new(0));
        let counter = made.clone();
        let b = source_indexed(u64::MAX, move |i| {
            counter.fetch_add(1, Ordering::Relaxed);
            i
        })
        .map(|x| x);
        let Some(mut pipe) = start(b, p) else { return };
        for _ in 0..5000 {
            pipe.recv().expect("endless");
        }
        pipe.stop();
        assert_eq!(pipe.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Ended));
        let r = pipe.report().expect("stopped");
        assert_balanced(r);
        assert_eq!(r.account.produced, made.load(Ordering::Relaxed), "{p:?}: every item made is accounted for");
    }
}

#[test]
fn an_empty_source_ends_at_once() {
    for p in PLACEMENTS {
        let Some(mut pipe) = start(source_indexed(0, |i| i).map(|x| x).aggregate(4), p) else { return };
        assert_eq!(pipe.recv_timeout(Duration::from_secs(30)), Err(RecvTimeoutError::Ended), "{p:?}");
        let r = pipe.finish().unwrap();
        assert_eq!((r.account.produced, r.stages[0].stats.emitted), (0, 0), "{p:?}");
    }
}

#[test]
fn options_that_do_not_apply_are_refused_with_the_alternative() {
    for (b, option) in
        [(source_indexed(10, |i| i).rate(100.0), "rate"), (source_indexed(10, |i| i).source_thread(), "source_thread")]
    {
        let err = b.build(Placement::single_loop()).expect_err("refused");
        assert!(matches!(err, PipelineBuildError::SplitSourceOption { option: o } if o == option), "{err}");
        assert!(err.to_string().contains("source(..)"), "{err}");
    }
    // The same options on an iterator source still build.
    assert!(source(0..10u64).rate(1e6).build(Placement::single_loop()).is_ok());
}
