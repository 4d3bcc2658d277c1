//! Pipelines end to end, in every placement: outputs, order, failures, stop, backpressure, and
//! the account of every source item.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{PipelineBuilder, Placement, RecvTimeoutError, source, source_epochs};
use shardpipe::time::sleep;

/// Every op kind in one chain: map, filter, 1 → N, async, blocking, batch and unbatch.
fn every_kind(n: u64) -> PipelineBuilder<u64> {
    source(0..n)
        .map(|x| x * 3)
        .pipe(|x| (x % 7 != 0).then_some(x))
        .pipe_iter(|x| if x % 5 == 0 { vec![x, x + 1] } else { vec![x] })
        .pipe_async(|x| async move {
            if x % 97 == 0 {
                sleep(Duration::from_micros(50)).await;
            }
            Some(x)
        })
        .concurrency(8)
        .pipe_blocking(|x| Ok::<_, String>(x ^ 1))
        .concurrency(4)
        .aggregate(64)
        .disaggregate()
}

#[test]
fn every_placement_yields_the_same_multiset_and_accounts_for_every_item() {
    let n = 20_000;
    let mut expected: Vec<u64> = (0..n)
        .map(|x| x * 3)
        .filter(|x| x % 7 != 0)
        .flat_map(|x| if x % 5 == 0 { vec![x, x + 1] } else { vec![x] })
        .map(|x| x ^ 1)
        .collect();
    expected.sort_unstable();
    for p in PLACEMENTS {
        let Some(mut pipe) = start(every_kind(n), p) else { return };
        let mut got: Vec<u64> = pipe.iter().collect();
        got.sort_unstable();
        let report = pipe.finish().expect("no failure limit");
        assert_eq!(got, expected, "{p:?}");
        assert_balanced(&report);
        assert_eq!(report.account.produced, n);
        assert_eq!(report.account.filtered, (0..n).filter(|x| (x * 3) % 7 == 0).count() as u64);
        assert_eq!(report.account.delivered + report.account.filtered, n, "{p:?}");
        assert_eq!(report.latency.count, report.account.delivered, "one latency per delivered source item");
    }
}

#[test]
fn an_ordered_stage_keeps_input_order_on_a_single_loop() {
    // Later items finish first (shorter sleeps), so completion order differs from input order.
    let b = source(0..400u64)
        .pipe_async(|x| async move {
            sleep(Duration::from_micros(400 - x)).await;
            Some(x)
        })
        .concurrency(32)
        .ordered();
    let Some(mut pipe) = start(b, Placement::single_loop()) else { return };
    let got: Vec<u64> = pipe.iter().collect();
    assert_eq!(got, (0..400).collect::<Vec<_>>());
    assert_balanced(&pipe.finish().unwrap());
}

#[test]
fn completion_order_is_the_default_for_async_stages() {
    let b = source(0..64u64)
        .pipe_async(|x| async move {
            sleep(Duration::from_micros(2000 - 30 * x)).await;
            Some(x)
        })
        .concurrency(64);
    let Some(mut pipe) = start(b, Placement::single_loop()) else { return };
    let got: Vec<u64> = pipe.iter().collect();
    assert_eq!(got.len(), 64);
    assert_ne!(got, (0..64).collect::<Vec<_>>(), "items that finish first come first");
}

#[test]
fn progress_counts_each_epoch_against_the_length_its_iterator_gave() {
    for p in PLACEMENTS {
        // Passes of 1000, 500 and 250 items, batched by 10: progress is in source items.
        let b = source_epochs(|e| (e < 3).then(|| 0..(1000u64 >> e))).aggregate(10);
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.progress().delivered, 0);
        for e in 0..3u64 {
            let len = 1000 >> e;
            let mut items = pipe.epoch();
            let mut seen = 0;
            while let Some(batch) = items.next() {
                seen += batch.len() as u64;
                let now = items.progress();
                assert_eq!((now.epoch, now.delivered, now.len), (e, seen, Some(len)), "{p:?}");
            }
            assert_eq!(seen, len, "{p:?}");
            let next = pipe.progress();
            assert_eq!((next.epoch, next.delivered), (e + 1, 0), "{p:?}: a new epoch starts at 0");
        }
        // An iterator that cannot say how many (a filter) gives no length.
        let b = source((0..100u64).filter(|x| x % 2 == 0));
        let Some(mut pipe) = start(b, p) else { return };
        let mut items = pipe.iter();
        items.next().expect("an item");
        assert_eq!((items.progress().len, items.progress().fraction()), (None, None), "{p:?}");
        assert_eq!(items.count(), 49);
        let b = source(0..100u64);
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.iter().count(), 100);
        assert_eq!(pipe.progress().fraction(), Some(1.0), "{p:?}: one pass is epoch 0");
    }
}

#[test]
fn stopping_early_ends_quickly_and_accounts_for_what_was_in_flight() {
    for p in PLACEMENTS {
        let b = source(0..u64::MAX).map(|x| x + 1).pipe_blocking(Some).aggregate(16);
        let Some(mut pipe) = start(b, p) else { return };
        for _ in 0..100 {
            pipe.recv().expect("an endless source");
        }
        pipe.stop();
        pipe.stop();
        assert_eq!(pipe.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Ended));
        let r = pipe.report().expect("stopped pipelines report").clone();
        assert_balanced(&r);
        assert_eq!(r.account.delivered, 1600);
        assert!(r.account.discarded > 0, "{p:?}: something was in flight");
    }
}

#[test]
fn a_slow_consumer_holds_the_source_within_the_bound() {
    for p in PLACEMENTS {
        let (items, pulled) = common::counted(20_000);
        let b = source(items).map(|x| x * 2).pipe_blocking(Some).aggregate(32);
        let Some(pipe) = start(b, p) else { return };
        let (worst, report) = common::drain_slowly_within_the_bound(pipe, &pulled, &format!("{p:?}"));
        assert!(worst > 0);
        assert_balanced(&report);
    }
}

#[test]
fn recv_timeout_tells_timed_out_from_ended() {
    let b = source(0..2u64).pipe_async(|x| async move {
        sleep(Duration::from_millis(300)).await;
        Some(x)
    });
    let Some(mut pipe) = start(b, Placement::sharded()) else { return };
    let t = Instant::now();
    assert_eq!(pipe.recv_timeout(Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
    assert!(t.elapsed() >= Duration::from_millis(20));
    let mut got =
        vec![pipe.recv_timeout(Duration::from_secs(30)).unwrap(), pipe.recv_timeout(Duration::from_secs(30)).unwrap()];
    got.sort_unstable();
    assert_eq!(got, [0, 1]);
    assert_eq!(pipe.recv_timeout(Duration::from_secs(30)), Err(RecvTimeoutError::Ended));
    assert_eq!(pipe.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Ended));
}

#[test]
fn drop_last_leaves_fewer_than_one_batch_in_total_across_shards() {
    for p in PLACEMENTS {
        let b = source(0..1000u64).aggregate(64).drop_last();
        let Some(mut pipe) = start(b, p) else { return };
        let batches: Vec<Vec<u64>> = pipe.iter().collect();
        let r = pipe.finish().unwrap();
        assert_eq!(batches.len(), 15, "{p:?}");
        assert!(batches.iter().all(|b| b.len() == 64));
        assert_eq!(r.account.left_over, 1000 - 15 * 64);
        assert_balanced(&r);
        let mut all: Vec<u64> = batches.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 960, "no item twice");
    }
}

#[test]
fn without_drop_last_only_one_batch_is_short() {
    for p in PLACEMENTS {
        let Some(mut pipe) = start(source(0..1000u64).aggregate(64), p) else { return };
        let mut sizes: Vec<usize> = pipe.iter().map(|b| b.len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes[0], 1000 % 64, "{p:?}");
        assert!(sizes[1..].iter().all(|&s| s == 64));
    }
}

#[test]
fn a_custom_aggregator_runs_per_shard_and_flushes_its_rest() {
    struct Sum(u64, u32);
    impl shardpipe::pipeline::Aggregator<u64> for Sum {
        type Output = u64;
        fn push(&mut self, x: u64) -> Option<u64> {
            self.0 += x;
            self.1 += 1;
            (self.1 == 10).then(|| std::mem::replace(self, Sum(0, 0)).0)
        }
        fn flush(&mut self) -> Option<u64> {
            (self.1 > 0).then_some(self.0)
        }
    }
    for p in PLACEMENTS {
        let Some(mut pipe) = start(source(0..1005u64).aggregate_with(|| Sum(0, 0)), p) else { return };
        let total: u64 = pipe.iter().sum();
        assert_eq!(total, (0..1005).sum::<u64>(), "{p:?}");
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn bad_options_are_refused_with_the_stage_and_the_fix() {
    let e = source(0..1u64).map(|x| x).name("work").concurrency(0).build(Placement::sharded()).unwrap_err();
    assert_eq!(e.to_string(), "stage 'work': concurrency must be at least 1, got 0");
    let e = source(0..1u64).map(|x| x).drop_last().build(Placement::sharded()).unwrap_err();
    assert!(e.to_string().contains("drop_last applies only to aggregate(n)"), "{e}");
    let e = source(0..1u64).aggregate(0).build(Placement::sharded()).unwrap_err();
    assert!(e.to_string().contains("the batch size must be at least 1"), "{e}");
    let e = source(0..1u64).sink(0).build(Placement::sharded()).unwrap_err();
    assert!(e.to_string().contains("'sink': buffer"), "{e}");
}

#[test]
fn the_report_has_every_stage_and_shard() {
    for p in PLACEMENTS {
        let b = source(0..5000u64).map(|x| x + 1).name("inc").pipe_blocking(Some).name("heavy");
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.iter().count(), 5000);
        let r = pipe.finish().unwrap();
        let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["source", "inc", "heavy", "sink"]);
        assert_eq!(r.stages[1].stats.received, 5000);
        assert_eq!(r.stages[2].stats.task_time.count(), 5000, "blocking ops are timed on every call");
        assert!(r.stages[1].stats.task_time.count() > 0, "inline ops are timed on a sample");
        assert_eq!(r.shard_usage.len(), r.shards);
        let text = r.to_string();
        assert!(text.contains("account: produced 5000 = delivered 5000"), "{text}");
    }
}

#[test]
fn every_timed_call_counts_its_whole_duration() {
    // Blocking calls share clock readings (one call's end is the next one's start): every call
    // must still be timed, and none shorter than it lasted. A lower bound only: it holds however
    // slow the machine is.
    let spin = Duration::from_micros(200);
    for p in PLACEMENTS {
        let b = source(0..200u64)
            .pipe_blocking(move |x| {
                let t = Instant::now();
                while t.elapsed() < spin {}
                Some(x)
            })
            .name("spin");
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.iter().count(), 200);
        let t = pipe.finish().unwrap().stages[1].stats.task_time.summary();
        assert_eq!(t.count, 200, "{p:?}");
        // HdrHistogram keeps 3 significant digits: a recorded value may read 0.1% low.
        assert!(t.mean >= 0.999 * spin.as_nanos() as f64, "{p:?}: mean {} ns", t.mean);
    }
}

/// Reorders (later items finish first), filters, expands and batches: an ordered pipeline must
/// still come out in source order.
fn ordered_everything(n: u64) -> PipelineBuilder<u64> {
    source(0..n)
        .pipe_async(|x| async move {
            sleep(Duration::from_micros(30 * (x % 7))).await;
            Some(x)
        })
        .concurrency(16)
        .ordered()
        .pipe(|x| (x % 3 != 0).then_some(x))
        .pipe_iter(|x| if x % 4 == 0 { vec![x, 1_000_000 + x] } else { vec![x] })
        .pipe_blocking(|x| Ok::<_, String>(x * 2))
        .concurrency(4)
        .ordered()
        .aggregate(16)
        .disaggregate()
}

#[test]
fn an_ordered_pipeline_yields_the_same_sequence_in_every_placement() {
    let n = 3000;
    let expected: Vec<u64> = (0..n)
        .filter(|x| x % 3 != 0)
        .flat_map(|x| if x % 4 == 0 { vec![x, 1_000_000 + x] } else { vec![x] })
        .map(|x| x * 2)
        .collect();
    for p in PLACEMENTS {
        let Some(mut pipe) = start(ordered_everything(n), p) else { return };
        let got: Vec<u64> = pipe.iter().collect();
        assert!(
            got == expected,
            "{p:?}: order differs (first difference at {:?})",
            got.iter().zip(&expected).position(|(a, b)| a != b)
        );
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn ordered_batches_hold_consecutive_items_on_shards_too() {
    for p in PLACEMENTS {
        let b = source(0..1000u64).pipe_async(|x| async move { Some(x) }).concurrency(8).ordered().aggregate(64);
        let Some(mut pipe) = start(b, p) else { return };
        let batches: Vec<Vec<u64>> = pipe.iter().collect();
        let expected: Vec<Vec<u64>> = (0..1000).collect::<Vec<_>>().chunks(64).map(<[u64]>::to_vec).collect();
        assert_eq!(batches, expected, "{p:?}");
    }
}

#[test]
fn each_epoch_is_its_own_iterator_and_batches_do_not_straddle_epochs() {
    for p in PLACEMENTS {
        let b =
            source_epochs(|e| (e < 3).then(|| (0..1000u64).map(move |x| x + 10_000 * e))).map(|x| x + 1).aggregate(64);
        let Some(mut pipe) = start(b, p) else { return };
        for e in 0..3u64 {
            let batches: Vec<Vec<u64>> = pipe.epoch().collect();
            let mut items: Vec<u64> = batches.iter().flatten().copied().collect();
            items.sort_unstable();
            assert_eq!(items, (0..1000).map(|x| x + 1 + 10_000 * e).collect::<Vec<_>>(), "{p:?} epoch {e}");
            assert_eq!(batches.iter().filter(|b| b.len() < 64).count(), 1, "{p:?}: one short batch per epoch");
            assert_eq!(pipe.epochs_done(), e + 1);
        }
        assert_eq!(pipe.epoch().count(), 0, "the stream ended after three epochs");
        let r = pipe.finish().unwrap();
        assert_eq!(r.account.produced, 3000);
        assert_balanced(&r);
    }
}

#[test]
fn an_endless_epoch_source_runs_until_stopped() {
    for p in PLACEMENTS {
        let b = source_epochs(|_| Some(0..100u64)).pipe_async(|x| async move { Some(x) }).concurrency(4);
        let Some(mut pipe) = start(b, p) else { return };
        for _ in 0..5 {
            let mut epoch: Vec<u64> = pipe.epoch().collect();
            epoch.sort_unstable();
            assert_eq!(epoch, (0..100).collect::<Vec<_>>(), "{p:?}");
        }
        pipe.stop();
        let r = pipe.report().unwrap();
        assert_balanced(r);
        assert!(r.account.produced >= 500);
    }
}

#[test]
fn a_pinned_stage_runs_only_on_its_shards() {
    for p in PLACEMENTS {
        let b = source(0..5000u64)
            .map(|x| x * 2)
            .map(|x| (x, shardpipe::current_shard()))
            .name("writer")
            .on_shards([0])
            .map(|(x, shard)| (x + 1, shard));
        let Some(mut pipe) = start(b, p) else { return };
        let got: Vec<(u64, Option<usize>)> = pipe.iter().collect();
        assert!(got.iter().all(|&(_, s)| s == Some(0)), "{p:?}: the writer ran off shard 0");
        let mut values: Vec<u64> = got.into_iter().map(|(x, _)| x).collect();
        values.sort_unstable();
        assert_eq!(values, (0..5000).map(|x| x * 2 + 1).collect::<Vec<_>>());
        assert_balanced(&pipe.finish().unwrap());
    }
}

#[test]
fn pinning_to_a_shard_the_placement_lacks_is_refused() {
    let b = source(0..10u64).map(|x| x).name("writer").on_shards([0, 7]);
    match b.build(Placement::Sharded { shards: 1 }) {
        Err(e) => assert!(e.to_string().contains("stage 'writer': on_shards([0, 7])"), "{e}"),
        Ok(_) => panic!("shard 7 does not exist"),
    }
}

#[test]
fn waits_and_occupancy_tell_which_side_is_slow() {
    // A slow consumer: the map keeps its output queue full and waits for room.
    let Some(mut pipe) = start(source(0..300u64).map(|x| x).name("fast"), Placement::sharded()) else { return };
    while pipe.recv().is_some() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = pipe.finish().unwrap();
    let fast = &r.stages[1].stats;
    assert!(fast.output_wait > Duration::ZERO, "backpressure shows as output wait");
    assert!(fast.occupancy().unwrap() > 0.5, "its queue was busy: {:?}", fast.occupancy());

    // A slow stage upstream: the stage after it starves and says so.
    let b = source(0..200u64)
        .pipe_async(|x| async move {
            sleep(Duration::from_micros(500)).await;
            Some(x)
        })
        .map(|x| x)
        .name("starved");
    let Some(mut pipe) = start(b, Placement::sharded()) else { return };
    assert_eq!(pipe.iter().count(), 200);
    let r = pipe.finish().unwrap();
    let starved = &r.stages[2].stats;
    assert!(starved.input_wait >= Duration::from_millis(50), "waited {:?}", starved.input_wait);
}

#[test]
fn periodic_reports_arrive_while_running_and_the_final_one_last() {
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reports.clone();
    let b = source(0..400u64)
        .pipe_async(|x| async move {
            sleep(Duration::from_micros(500)).await;
            Some(x)
        })
        .concurrency(2)
        .report_every(Duration::from_millis(10), move |r| {
            seen.lock().unwrap().push((r.account, r.shard_usage.clone()))
        });
    let Some(mut pipe) = start(b, Placement::sharded()) else { return };
    let live = pipe.shard_usage();
    assert_eq!(pipe.iter().count(), 400);
    assert!(pipe.shard_usage().is_empty(), "read live only while the pipeline runs");
    let final_report = pipe.finish().unwrap();
    assert_eq!(live.len(), final_report.shard_usage.len());
    let reports = reports.lock().unwrap();
    // Every periodic report has the shards' usage so far, and it only grows.
    let shards = final_report.shard_usage.len();
    assert!(reports.iter().all(|(_, u)| u.len() == shards), "{shards} shards in each report");
    for w in reports.windows(2) {
        for (a, b) in w[0].1.iter().zip(&w[1].1) {
            assert!(b.busy + b.idle >= a.busy + a.idle && b.tasks_run >= a.tasks_run, "{a:?} then {b:?}");
        }
    }
    let reports: Vec<_> = reports.iter().map(|(a, _)| *a).collect();
    // 400 items at 2 × 500 µs take at least 100 ms, so at least a few 10 ms ticks happened.
    assert!(reports.len() >= 3, "{} reports", reports.len());
    assert_eq!(*reports.last().unwrap(), final_report.account, "the final report comes last");
    let delivered: Vec<u64> = reports.iter().map(|a| a.delivered).collect();
    assert!(delivered.windows(2).all(|w| w[0] <= w[1]), "counters only grow: {delivered:?}");
    assert!(delivered[0] < 400, "the first report came mid-run");
}

#[test]
fn a_source_that_blocks_between_items_still_delivers_each_one() {
    // The source waits for a token before each item (as a socket reader would); its items must
    // not sit unpublished while it waits. The stage runs on shard 1, away from the source.
    let (token_tx, token_rx) = std::sync::mpsc::channel::<()>();
    let items = (0..50u64).inspect(move |_| {
        let _ = token_rx.recv();
    });
    let b = source(items).map(|x| x * 2).on_shards([1]);
    let Some(mut pipe) = start(b, Placement::Sharded { shards: 2 }) else { return };
    for i in 0..50 {
        token_tx.send(()).unwrap();
        assert_eq!(
            pipe.recv_timeout(Duration::from_secs(30)),
            Ok(i * 2),
            "item {i} must arrive while the source waits"
        );
    }
    drop(token_tx);
    assert_balanced(&pipe.finish().unwrap());
}

#[test]
fn open_loop_latency_counts_from_the_scheduled_emission_so_a_stall_is_not_hidden() {
    for p in PLACEMENTS {
        // 100 items due at 0, 1, …, 99 ms; the stage stalls 200 ms on the first one, with room
        // for almost nothing in between, so every item reaches the consumer after 200 ms.
        let b = source(0..100u64)
            .rate(1000.0)
            .buffer(2)
            .pipe_async(|x| async move {
                if x == 0 {
                    sleep(Duration::from_millis(200)).await;
                }
                Some(x)
            })
            .ordered()
            .buffer(1)
            .sink(1);
        let t = Instant::now();
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.iter().count(), 100);
        assert!(t.elapsed() >= Duration::from_millis(200));
        let r = pipe.finish().unwrap();
        // Measured from the actual emission, items stuck behind the stall would look fast.
        assert!(r.latency.p50 >= 100_000_000, "{p:?}: p50 {} ns hides the stall", r.latency.p50);
        assert_balanced(&r);
    }
}

#[test]
fn an_open_loop_source_keeps_its_schedule() {
    let t = Instant::now();
    let Some(mut pipe) = start(source(0..100u64).rate(1000.0), Placement::sharded()) else { return };
    assert_eq!(pipe.iter().count(), 100);
    assert!(t.elapsed() >= Duration::from_millis(99), "100 items at 1000/s take at least 99 ms");
    let e = source(0..1u64).rate(0.0).build(Placement::sharded()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("source rate must be a positive number"), "{e}");
}

#[test]
fn stopping_a_pipeline_whose_op_never_finishes_does_not_hang() {
    for p in PLACEMENTS {
        let b = source(0..100u64)
            .pipe_async(|x| async move {
                if x == 3 {
                    std::future::pending::<()>().await;
                }
                Some(x)
            })
            .concurrency(4);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got = 0;
        while pipe.recv_timeout(Duration::from_millis(300)).is_ok() {
            got += 1;
        }
        pipe.stop();
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert!(got >= 1 && r.account.discarded >= 1, "{p:?}: {got} delivered, {:?}", r.account);
    }
}
