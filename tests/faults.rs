//! Fault injection: random pipelines (stages, concurrency, order, placement, epochs, the source on
//! its own thread or not) under random fault schedules (errors, panics, delays, ops that never
//! finish, failure limits as counts and rates, a consumer
//! that stops early, drops the pipeline mid-flight). Every run must end within a bound, deliver no value twice and nothing it
//! should not, and keep an account that balances; a run that no limit or stop cut short must
//! deliver exactly what a sequential model of the same faults says. Cross-shard rings under
//! random capacities, stalls and a consumer that quits lose, duplicate and reorder nothing.

mod common;

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shardpipe::channel;
use shardpipe::pipeline::{PipelineBuilder, Placement, RecvTimeoutError, Report, source_epochs};

/// A value: the source item it came from and, after 1 → 2 stages, which branch.
type Item = (u64, u32);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `pipe` returning `Result`: errors and panics.
    Inline,
    /// `pipe` returning `Option`: drops some (its injected errors are panics).
    Filter,
    /// `pipe_iter`: 1 → 2.
    Expand,
    /// `pipe_async`: may sleep.
    Async,
    /// `pipe_blocking`: may spin.
    Blocking,
}

#[derive(Debug, Clone)]
struct Stage {
    kind: Kind,
    concurrency: usize,
    ordered: bool,
    /// Per mille of items that fail with an error, that panic, that are delayed.
    errors: u32,
    panics: u32,
    delays: u32,
    /// Per mille of items whose async op never finishes (async stages only).
    stuck: u32,
    max_failures: Option<u64>,
    max_failure_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Consumer {
    Drain,
    /// `stop()` after this many values, then finish.
    StopAfter(usize),
    /// Drop the pipeline after this many values.
    DropAfter(usize),
}

#[derive(Debug, Clone)]
struct Case {
    items: u64,
    epochs: u64,
    stages: Vec<Stage>,
    placement: Placement,
    consumer: Consumer,
    max_failures_total: Option<u64>,
    max_failure_rate_total: Option<f64>,
    /// The iterator on its own thread (`source_thread()`).
    source_thread: bool,
}

/// A deterministic per-(value, stage) draw in 0..1000: the model and the pipeline agree on it.
fn draw(v: Item, stage: usize, salt: u64) -> u32 {
    let mut h = v.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(v.1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= (stage as u64 + 1).wrapping_mul(0x1656_67b1_9e37_79f9) ^ salt;
    h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((h ^ (h >> 29)) % 1000) as u32
}

/// What stage `i` does to one value, without its delay: outputs, or `None` when it fails.
fn apply(st: &Stage, i: usize, v: Item) -> Option<Vec<Item>> {
    if draw(v, i, 1) < st.errors || draw(v, i, 2) < st.panics {
        return None;
    }
    Some(match st.kind {
        Kind::Filter if draw(v, i, 3) < 200 => vec![],
        Kind::Expand => vec![(v.0, v.1 * 2), (v.0, v.1 * 2 + 1)],
        _ => vec![v],
    })
}

/// The same, as the pipeline runs it: panics where the model fails by panic.
fn run_stage(st: &Stage, i: usize, v: Item) -> Result<Vec<Item>, String> {
    if draw(v, i, 4) < st.delays {
        let d = Duration::from_micros(u64::from(draw(v, i, 5) % 200));
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::spin_loop();
        }
    }
    if draw(v, i, 2) < st.panics && draw(v, i, 1) >= st.errors {
        panic!("injected panic at stage {i} on {v:?}");
    }
    apply(st, i, v).ok_or_else(|| format!("injected error at stage {i} on {v:?}"))
}

/// Every value a run without limits or stops must deliver, in source order.
fn model(case: &Case) -> Vec<Item> {
    let mut out = Vec::new();
    for _ in 0..case.epochs {
        for id in 0..case.items {
            let mut vals = vec![(id, 1u32)];
            for (i, st) in case.stages.iter().enumerate() {
                vals = vals.into_iter().filter_map(|v| apply(st, i, v)).flatten().collect();
            }
            out.extend(vals);
        }
    }
    out
}

fn build(case: &Case) -> PipelineBuilder<Item> {
    let (items, epochs) = (case.items, case.epochs);
    let mut b = source_epochs(move |e| (e < epochs).then(|| (0..items).map(|id| (id, 1u32)))).buffer(64);
    if case.source_thread {
        b = b.source_thread();
    }
    for (i, st) in case.stages.iter().enumerate() {
        let s = st.clone();
        b = match st.kind {
            Kind::Inline => b.pipe(move |v| run_stage(&s, i, v).map(|o| o[0])),
            // An `Option` stage has no error outcome: its injected errors panic (both are failures).
            Kind::Filter => b.pipe(move |v| run_stage(&s, i, v).unwrap_or_else(|e| panic!("{e}")).first().copied()),
            Kind::Expand => b.pipe_iter(move |v| run_stage(&s, i, v).unwrap_or_else(|e| panic!("{e}"))),
            Kind::Async => b.pipe_async(move |v| {
                let r = run_stage(&s, i, v).map(|o| o[0]);
                let nap = draw(v, i, 6) < s.delays;
                let stuck = draw(v, i, 7) < s.stuck;
                async move {
                    if nap {
                        shardpipe::time::sleep(Duration::from_micros(50)).await;
                    }
                    if stuck {
                        std::future::pending::<()>().await;
                    }
                    r
                }
            }),
            Kind::Blocking => b.pipe_blocking(move |v| run_stage(&s, i, v).map(|o| o[0])),
        };
        b = b.name(format!("s{i}")).concurrency(st.concurrency);
        if st.ordered {
            b = b.ordered();
        }
        if let Some(m) = st.max_failures {
            b = b.max_failures(m);
        }
        if let Some(r) = st.max_failure_rate {
            b = b.max_failure_rate(r);
        }
    }
    if let Some(m) = case.max_failures_total {
        b = b.max_failures_total(m);
    }
    match case.max_failure_rate_total {
        Some(r) => b.max_failure_rate_total(r),
        None => b,
    }
}

/// What a run delivered and how it ended.
struct Outcome {
    delivered: Vec<Item>,
    report: Option<Report>,
    limit_tripped: bool,
    stopped: bool,
}

fn run(case: &Case) -> Option<Outcome> {
    // With ops that never finish, the stream cannot end by itself: a quiet spell means stop.
    let may_stick = case.stages.iter().any(|s| s.stuck > 0);
    let mut pipe = common::start(build(case), case.placement)?;
    let mut delivered = Vec::new();
    let (mut limit_tripped, mut stopped) = (false, false);
    loop {
        match case.consumer {
            Consumer::StopAfter(n) if delivered.len() >= n => {
                pipe.stop();
                stopped = true;
                break;
            }
            Consumer::DropAfter(n) if delivered.len() >= n => {
                drop(pipe);
                return Some(Outcome { delivered, report: None, limit_tripped, stopped: true });
            }
            _ => {}
        }
        let quiet = if may_stick { Duration::from_millis(300) } else { Duration::from_secs(30) };
        match pipe.recv_timeout(quiet) {
            Ok(v) => delivered.push(v),
            Err(RecvTimeoutError::Ended) => break,
            Err(RecvTimeoutError::Failed(_)) => limit_tripped = true,
            Err(RecvTimeoutError::Timeout) if may_stick => {
                pipe.stop();
                stopped = true;
                break;
            }
            Err(RecvTimeoutError::Timeout) => panic!("no value and no end for 30 s: a hang"),
        }
    }
    let report = match pipe.finish() {
        Ok(r) => r,
        Err(failed) => {
            limit_tripped = true;
            *failed.report
        }
    };
    Some(Outcome { delivered, report: Some(report), limit_tripped, stopped })
}

fn stage() -> impl Strategy<Value = Stage> {
    let kind = prop_oneof![
        Just(Kind::Inline),
        Just(Kind::Filter),
        Just(Kind::Expand),
        Just(Kind::Async),
        Just(Kind::Blocking)
    ];
    let stuck = prop_oneof![4 => Just(0u32), 1 => 1u32..5];
    let limits = (prop::option::weighted(0.3, 0u64..20), prop::option::weighted(0.15, 0.005f64..0.1));
    (kind, 1usize..8, any::<bool>(), 0u32..40, 0u32..15, 0u32..100, stuck, limits).prop_map(
        |(kind, concurrency, ordered, errors, panics, delays, stuck, (max_failures, max_failure_rate))| Stage {
            kind,
            concurrency,
            ordered,
            // An expanding stage fails only by panic (pipe_iter has no error outcome).
            errors: if kind == Kind::Expand { 0 } else { errors },
            panics,
            delays,
            stuck: if kind == Kind::Async { stuck } else { 0 },
            max_failures,
            max_failure_rate,
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    let placement = prop_oneof![
        Just(Placement::SingleLoop { offload_threads: 2 }),
        Just(Placement::Sharded { shards: 1 }),
        Just(Placement::Sharded { shards: 0 }),
    ];
    let consumer = prop_oneof![
        3 => Just(Consumer::Drain),
        1 => (0usize..500).prop_map(Consumer::StopAfter),
        1 => (0usize..500).prop_map(Consumer::DropAfter),
    ];
    (
        0u64..1500,
        1u64..3,
        prop::collection::vec(stage(), 1..5),
        placement,
        consumer,
        prop::option::weighted(0.2, 0u64..30),
        prop::option::weighted(0.1, 0.005f64..0.1),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(
                items,
                epochs,
                stages,
                placement,
                consumer,
                max_failures_total,
                max_failure_rate_total,
                source_thread,
            )| {
                Case {
                    items,
                    epochs,
                    stages,
                    placement,
                    consumer,
                    max_failures_total,
                    max_failure_rate_total,
                    source_thread,
                }
            },
        )
}

/// Injected panics are expected by the hundred: keep them off stderr, report every other.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
            if !msg.starts_with("injected") {
                default(info);
            }
        }));
    });
}

/// Runs `case` on another thread; a run that does not end within the bound is a hang.
fn run_bounded(case: &Case) -> Option<Outcome> {
    let (tx, rx) = mpsc::channel();
    let c = case.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&c))));
    });
    match rx.recv_timeout(Duration::from_secs(40)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("the run did not end within 40 s: {case:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_pipelines_under_random_faults_lose_and_duplicate_nothing(case in case()) {
        quiet_injected_panics();
        let Some(out) = run_bounded(&case) else { return Ok(()) };
        let expected = model(&case);
        let allowed: HashSet<Item> = expected.iter().copied().collect();
        // Epochs repeat values: count each (value, epoch) once by comparing multisets.
        let mut got = out.delivered.clone();
        got.sort_unstable();
        let mut want = expected.clone();
        want.sort_unstable();
        let over = got.iter().filter(|v| !allowed.contains(v)).count();
        prop_assert_eq!(over, 0, "delivered values the model never produces");
        let mut counts = std::collections::HashMap::new();
        for v in &want { *counts.entry(*v).or_insert(0i64) += 1; }
        for v in &got { *counts.entry(*v).or_insert(0i64) -= 1; }
        prop_assert!(counts.values().all(|&c| c >= 0), "a value was delivered more often than produced");
        if let Some(r) = &out.report {
            prop_assert!(r.account.balances(), "account does not balance: {:?}", r.account);
            prop_assert_eq!(r.received, out.delivered.len() as u64);
        }
        if !out.limit_tripped && !out.stopped {
            prop_assert_eq!(&got, &want, "a complete run delivers exactly the model's values");
            // Order is promised when some stage asks for it and every stage that could reorder
            // (tasks, blocking ops) keeps it; otherwise items come in completion order.
            let reorderers_ordered = case.stages.iter().all(|s| s.ordered || matches!(s.kind, Kind::Inline | Kind::Filter | Kind::Expand));
            if reorderers_ordered && case.stages.iter().any(|s| s.ordered) {
                prop_assert_eq!(&out.delivered, &expected, "ordered stages keep source order");
            }
            let r = out.report.as_ref().expect("a drained run has a report");
            prop_assert_eq!(r.account.produced, case.items * case.epochs);
        }
    }
}

/// How one end of a ring misbehaves: every `every`-th operation it yields or sleeps.
#[derive(Debug, Clone, Copy)]
struct Stalls {
    every: u64,
    sleep_us: u64,
}

async fn stall(s: Stalls, i: u64) {
    if s.every > 0 && i.is_multiple_of(s.every) {
        if s.sleep_us > 0 {
            shardpipe::time::sleep(Duration::from_micros(s.sleep_us)).await;
        } else {
            shardpipe::yield_now().await;
        }
    }
}

fn stalls() -> impl Strategy<Value = Stalls> {
    (prop_oneof![Just(0u64), 1u64..64, 64u64..5000], prop_oneof![Just(0u64), 1u64..300])
        .prop_map(|(every, sleep_us)| Stalls { every, sleep_us })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// A producer shard and a consumer shard with random stalls on both ends, batched or single
    /// receives, and a consumer that may quit early: the consumer sees exactly `0..k` in order,
    /// and the producer's failed send hands back a value it never saw delivered.
    #[test]
    fn rings_under_stalls_and_early_quits_lose_and_duplicate_nothing(
        cap in 1usize..200,
        items in 0u64..20_000,
        producer in stalls(),
        consumer in stalls(),
        batch in prop_oneof![Just(1usize), 2usize..100],
        quit_after in prop::option::weighted(0.3, 0u64..20_000),
    ) {
        let Some(rt) = common::two_shards() else { return Ok(()) };
        let (tx, rx) = channel::bounded::<u64>(cap);
        let sent = rt.run_on(0, move || async move {
            let tx = tx.connect();
            for i in 0..items {
                stall(producer, i).await;
                if let Err(channel::SendError(v)) = tx.send(i).await {
                    return (i, Some(v));
                }
            }
            (items, None)
        }).unwrap();
        let got = rt.run_on(1, move || async move {
            let rx = rx.connect();
            let (mut seen, mut buf) = (Vec::new(), Vec::new());
            loop {
                if quit_after.is_some_and(|q| seen.len() as u64 >= q) {
                    return seen; // dropping `rx` disconnects the producer
                }
                stall(consumer, seen.len() as u64).await;
                if batch == 1 {
                    match rx.recv().await { Some(v) => seen.push(v), None => return seen }
                } else {
                    buf.clear();
                    if rx.recv_many(&mut buf, batch).await == 0 { return seen }
                    seen.extend_from_slice(&buf);
                }
            }
        }).unwrap();
        let seen = got.join().unwrap();
        let (stopped_at, handed_back) = sent.join().unwrap();
        prop_assert!(seen.iter().copied().eq(0..seen.len() as u64), "received in order, none lost or doubled");
        if let Some(v) = handed_back {
            prop_assert_eq!(v, stopped_at, "the failed send hands its own value back");
            prop_assert!(v >= seen.len() as u64, "a value handed back was not also delivered");
        }
        if quit_after.is_none() {
            prop_assert_eq!(seen.len() as u64, items, "without a quit, everything arrives");
        }
    }
}
