//! Failures in pipelines, in every placement: errors and panics at every stage, per-stage and
//! pipeline limits as counts and as rates, a panicking source, and the account through all of it.

mod common;

use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{PipelineBuilder, Placement, RecvTimeoutError, source};

/// Fails (error or panic) items at every kind of stage; no limit, so the run completes.
fn failing_everywhere(n: u64) -> PipelineBuilder<Vec<u64>> {
    source(0..n)
        .pipe(|x| if x % 101 == 0 { Err(format!("bad item {x}")) } else { Ok(x) })
        .name("check")
        .map(|x| {
            assert!(x % 103 != 0, "map panics on {x}");
            x
        })
        .name("panicky")
        .pipe_async(|x| async move { if x % 107 == 0 { Err("async failure") } else { Ok(x) } })
        .name("fetch")
        .concurrency(4)
        .pipe_blocking(|x| {
            assert!(x % 109 != 0, "blocking op panics on {x}");
            Some(x)
        })
        .name("decode")
        .aggregate(10)
}

#[test]
fn failures_at_every_stage_are_counted_per_stage_and_balance_the_account() {
    let n = 10_000u64;
    let count =
        |m: u64, earlier: &[u64]| (0..n).filter(|x| x % m == 0 && earlier.iter().all(|e| x % e != 0)).count() as u64;
    let expect = [count(101, &[]), count(103, &[101]), count(107, &[101, 103]), count(109, &[101, 103, 107])];
    for p in PLACEMENTS {
        let Some(mut pipe) = start(failing_everywhere(n), p) else { return };
        let delivered: u64 = pipe.iter().map(|b| b.len() as u64).sum();
        let r = pipe.finish().expect("no limit set");
        assert_balanced(&r);
        let failures: Vec<u64> = r.stages[1..5].iter().map(|s| s.stats.failures).collect();
        assert_eq!(failures, expect, "{p:?}");
        assert_eq!(r.account.failed, expect.iter().sum::<u64>());
        assert_eq!(delivered, r.account.delivered);
    }
}

#[test]
fn exceeding_max_failures_stops_the_source_and_names_every_failing_stage() {
    for p in PLACEMENTS {
        let b = source(0..1_000_000u64)
            .pipe(|x| if x % 10 == 0 { Err("tens are bad") } else { Ok(x) })
            .name("tens")
            .pipe(|x| if x % 3 == 0 { Err("threes are bad") } else { Ok(x) })
            .name("threes")
            .max_failures(50);
        let Some(mut pipe) = start(b, p) else { return };
        let mut error = None;
        loop {
            match pipe.recv_timeout(Duration::from_secs(30)) {
                Ok(_) => {}
                Err(RecvTimeoutError::Failed(e)) => error = Some(e),
                Err(RecvTimeoutError::Ended) => break,
                Err(RecvTimeoutError::Timeout) => panic!("a cancelled pipeline must end"),
            }
        }
        let e = error.expect("the limit error is returned once");
        let names: Vec<&str> = e.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(names, ["tens", "threes"], "{p:?}: {e}");
        assert!(e.stages[1].count > 50);
        assert!(e.to_string().contains("threes are bad"), "{e}");
        let failed = pipe.finish().expect_err("finish reports the error too");
        assert_balanced(&failed.report);
        assert!(failed.report.account.produced < 1_000_000, "the source was cancelled");
    }
}

/// Drains `pipe`; returns the limit error if it was exceeded.
fn drain_for_error<T: Send + 'static>(
    pipe: &mut shardpipe::pipeline::Pipeline<T>,
) -> Option<shardpipe::pipeline::FailureLimitExceeded> {
    let mut error = None;
    loop {
        match pipe.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => {}
            Err(RecvTimeoutError::Failed(e)) => error = Some(e),
            Err(RecvTimeoutError::Ended) => return error,
            Err(RecvTimeoutError::Timeout) => panic!("the pipeline must end"),
        }
    }
}

#[test]
fn a_failure_rate_trips_above_it_after_the_probation_and_not_below() {
    // One item in five fails, on every placement: a 10% limit trips (and cancels the source), a
    // 30% limit never does, whatever order the shards see the items in.
    let fifths = || source(0..1_000_000u64).pipe(|x| if x % 5 == 0 { Err("a fifth") } else { Ok(x) }).name("fifths");
    for p in PLACEMENTS {
        let Some(mut pipe) = start(fifths().max_failure_rate(0.1), p) else { return };
        let e = drain_for_error(&mut pipe).expect("20% is above 10%");
        assert_eq!(e.stages.len(), 1, "{e}");
        let s = &e.stages[0];
        let calls = s.calls.expect("calls are counted under a rate");
        assert!(calls >= 100, "{p:?}: tripped within the probation: {e}");
        // It tripped on a failure above 10% of at least 100 calls; calls arriving after that
        // (in flight when it tripped) are counted too, so the final ratio may read lower.
        assert!(s.count > 10, "{p:?}: {e}");
        assert!(e.to_string().contains("(limit 10% of calls)"), "{e}");
        let failed = pipe.finish().expect_err("finish reports it too");
        assert_balanced(&failed.report);
        assert!(failed.report.account.produced < 1_000_000, "{p:?}: the source was cancelled");

        let b = source(0..20_000u64).pipe(|x| if x % 5 == 0 { Err("a fifth") } else { Ok(x) }).max_failure_rate(0.3);
        let Some(mut pipe) = start(b, p) else { return };
        assert!(drain_for_error(&mut pipe).is_none(), "{p:?}: 20% is within 30%");
        let r = pipe.finish().expect("within the limit");
        assert_eq!((r.account.failed, r.account.delivered), (4000, 16_000));
    }
}

#[test]
fn the_pipeline_rate_counts_failed_source_items_wherever_they_failed() {
    // A tenth of the items fail at the first stage, another tenth at the second: 20% of the
    // source items. A 15% pipeline limit trips, a 25% one does not.
    let chain = || {
        source(0..200_000u64)
            .pipe(|x| if x % 10 == 0 { Err("tenth") } else { Ok(x) })
            .pipe(|x| if x % 10 == 1 { Err("another tenth") } else { Ok(x) })
    };
    for p in PLACEMENTS {
        let Some(mut pipe) = start(chain().max_failure_rate_total(0.15), p) else { return };
        let e = drain_for_error(&mut pipe).expect("20% is above 15%");
        assert_eq!(e.total_rate_limit, Some(0.15));
        assert!(e.to_string().contains("(pipeline limit 15% of source items)"), "{e}");
        assert_balanced(&pipe.finish().expect_err("tripped").report);
        let Some(mut pipe) = start(chain().max_failure_rate_total(0.25), p) else { return };
        assert!(drain_for_error(&mut pipe).is_none(), "{p:?}: 20% is within 25%");
        assert_eq!(pipe.finish().expect("within").account.failed, 40_000);
    }
}

#[test]
fn failure_rates_outside_zero_to_one_are_refused() {
    for rate in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let e = source(0..1u64).map(|x| x).name("work").max_failure_rate(rate).build(Placement::sharded()).unwrap_err();
        assert!(
            e.to_string().starts_with("stage 'work': max_failure_rate must be a fraction strictly between 0 and 1"),
            "{e}"
        );
        let e = source(0..1u64).max_failure_rate_total(rate).build(Placement::sharded()).unwrap_err();
        assert!(e.to_string().starts_with("the pipeline's max_failure_rate"), "{e}");
    }
}

#[test]
fn a_panicking_source_fails_the_pipeline_and_names_the_source() {
    // On shard 0's loop and on a thread of its own (`source_thread()`) alike.
    for (p, threaded) in PLACEMENTS.into_iter().flat_map(|p| [(p, false), (p, true)]) {
        let items = (0..1000u64).inspect(|&x| assert!(x != 500, "source broke at {x}"));
        let b = if threaded { source(items).source_thread() } else { source(items) };
        let Some(mut pipe) = start(b, p) else { return };
        let got = pipe.iter().count();
        assert_eq!(got, 500, "{p:?}");
        let err = pipe.finish().expect_err("a broken source is a failure");
        assert!(err.to_string().contains("'source'") && err.to_string().contains("source broke at 500"), "{err}");
        assert_balanced(&err.report);
    }
}

/// Found by tests/faults.rs: an async op whose function panics before it returns its future
/// killed the stage's worker and stalled the pipeline. It is a counted failure like any other.
#[test]
fn a_panic_in_an_async_ops_function_is_a_counted_failure_not_a_stall() {
    for p in PLACEMENTS {
        let b = source(0..1000u64)
            .pipe_async(|x| {
                assert!(x % 100 != 7, "bad item {x}");
                async move { Some(x) }
            })
            .concurrency(4);
        let Some(mut pipe) = start(b, p) else { return };
        let mut got = 0;
        loop {
            match pipe.recv_timeout(Duration::from_secs(30)) {
                Ok(_) => got += 1,
                Err(RecvTimeoutError::Ended) => break,
                Err(e) => panic!("{p:?}: {e:?} after {got} items"),
            }
        }
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!((got, r.account.failed), (990, 10), "{p:?}");
        assert!(r.stages[1].failure_samples[0].contains("bad item"), "{:?}", r.stages[1].failure_samples);
    }
}
