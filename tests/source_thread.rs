//! `source_thread()` and `merge_sources`: the user's iterators on threads of their own, in every
//! placement: the same items as on the shard, epochs and progress, a source that waits on the
//! consumer, merged sources that end at different times or block, a panic in a merged source,
//! and early stops (a panic on a single source thread: `tests/pipeline_failures.rs`).

mod common;

use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{RecvTimeoutError, merge_sources, source, source_epochs};

#[test]
fn a_threaded_source_delivers_the_same_items_epochs_and_lengths() {
    for p in PLACEMENTS {
        // Epoch passes made on the source thread (the iterator need not be Send there either).
        let b = source_epochs(|e| (e < 3).then(|| (0..(300u64 << e)).map(move |x| x * 10 + e)))
            .source_thread()
            .map(|x| x + 1)
            .aggregate(7);
        let Some(mut pipe) = start(b, p) else { return };
        for e in 0..3u64 {
            let mut items = pipe.epoch();
            let mut got = Vec::new();
            while let Some(batch) = items.next() {
                got.extend(batch);
                assert_eq!(items.progress().len, Some(300 << e), "{p:?}: the thread reports the pass length");
            }
            got.sort_unstable();
            let want: Vec<u64> = (0..(300u64 << e)).map(|x| x * 10 + e + 1).collect();
            assert_eq!(got, want, "{p:?}: epoch {e}");
        }
        let r = pipe.finish().expect("no failures");
        assert_eq!(r.account.produced, 300 + 600 + 1200);
        assert_balanced(&r);
    }
}

#[test]
fn a_source_that_waits_on_the_consumer_runs_beside_stages_on_its_own_shard() {
    // Each item waits for a token the consumer sends after receiving the one before. On shard
    // 0's loop this iterator would block the stage running there (on a single loop, every
    // stage); on its own thread every stage keeps running.
    for p in PLACEMENTS {
        let (token_tx, token_rx) = std::sync::mpsc::channel::<()>();
        let items = (0..100u64).inspect(move |_| {
            let _ = token_rx.recv();
        });
        let b = source(items).source_thread().map(|x| x * 2).pipe_blocking(Some);
        let Some(mut pipe) = start(b, p) else { return };
        for i in 0..100 {
            token_tx.send(()).unwrap();
            assert_eq!(pipe.recv_timeout(Duration::from_secs(30)), Ok(i * 2), "{p:?}: item {i}");
        }
        drop(token_tx);
        assert_eq!(pipe.recv_timeout(Duration::from_secs(30)), Err(RecvTimeoutError::Ended));
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn stopping_ends_the_source_while_its_thread_waits_for_room() {
    // An endless source fills the feed and waits for room: stop() ends it and the account
    // balances. (That no thread is left behind is checked in tests/resources.rs, which
    // counts threads alone in its own binary.)
    for p in PLACEMENTS {
        let Some(mut pipe) = start(source(0..u64::MAX).source_thread().map(|x| x), p) else { return };
        for _ in 0..1000 {
            pipe.recv().expect("endless");
        }
        pipe.stop();
        assert_eq!(pipe.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Ended));
        assert_balanced(pipe.report().expect("stopped"));
    }
}

#[test]
fn dropping_the_pipeline_while_the_iterator_blocks_returns() {
    // The iterator waits for items that never come: dropping the pipeline must not wait for it
    // (the thread ends once the iterator returns).
    for p in PLACEMENTS {
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let Some(mut pipe) = start(source(rx).source_thread(), p) else { return };
        tx.send(7).unwrap();
        assert_eq!(pipe.recv_timeout(Duration::from_secs(30)), Ok(7));
        drop(pipe);
        drop(tx);
    }
}

#[test]
fn merged_sources_deliver_every_item_once_and_one_ending_early_stops_nothing() {
    for p in PLACEMENTS {
        let sources = vec![0..10u64, 1000..1500, 5000..8000];
        let b = merge_sources(sources).map(|x| x + 1).aggregate(16);
        let Some(mut pipe) = start(b, p) else { return };
        let mut items = pipe.iter();
        let mut got: Vec<u64> = Vec::new();
        while let Some(batch) = items.next() {
            got.extend(batch);
            assert_eq!(items.progress().len, Some(10 + 500 + 3000), "{p:?}: the lengths add up");
        }
        got.sort_unstable();
        let want: Vec<u64> = (0..10u64).chain(1000..1500).chain(5000..8000).map(|x| x + 1).collect();
        assert_eq!(got, want, "{p:?}");
        let r = pipe.finish().expect("no failures");
        assert_eq!(r.account.produced, 3510);
        assert_balanced(&r);
        // No sources at all: an empty stream, not a hang.
        let Some(mut pipe) = start(merge_sources(Vec::<std::ops::Range<u64>>::new()), p) else { return };
        assert_eq!(pipe.iter().count(), 0);
    }
}

#[test]
fn a_blocked_merged_source_does_not_hold_up_the_others() {
    // Source A waits until the consumer has every item of source B; B must flow meanwhile.
    for p in PLACEMENTS {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let a: Box<dyn Iterator<Item = u64> + Send> = Box::new((0..5u64).inspect(move |&x| {
            if x == 0 {
                let _ = go_rx.recv();
            }
        }));
        let b: Box<dyn Iterator<Item = u64> + Send> = Box::new(100..200u64);
        let Some(mut pipe) = start(merge_sources(vec![a, b]).map(|x| x * 2), p) else { return };
        let mut from_b = 0;
        while from_b < 100 {
            let v = pipe.recv_timeout(Duration::from_secs(30)).expect("B's items flow while A blocks");
            assert!(v >= 200, "{p:?}: A is blocked, so this must be B's: {v}");
            from_b += 1;
        }
        go_tx.send(()).unwrap();
        let mut rest: Vec<u64> = pipe.iter().collect();
        rest.sort_unstable();
        assert_eq!(rest, [0, 2, 4, 6, 8], "{p:?}");
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn a_panic_in_one_merged_source_fails_the_pipeline() {
    for p in PLACEMENTS {
        let bad: Box<dyn Iterator<Item = u64> + Send> =
            Box::new((0..100u64).inspect(|&x| assert!(x != 50, "source broke at {x}")));
        let good: Box<dyn Iterator<Item = u64> + Send> = Box::new(1000..1100u64);
        let Some(mut pipe) = start(merge_sources(vec![bad, good]), p) else { return };
        let _ = pipe.iter().count();
        let err = pipe.finish().expect_err("a broken source is a failure");
        assert!(err.to_string().contains("source broke at 50"), "{p:?}: {err}");
        assert_balanced(&err.report);
    }
}
