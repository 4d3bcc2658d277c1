//! Pipeline throughput, single loop against sharded (see docs/benchmarks.md). Every iteration
//! builds the pipeline, pushes exactly 100,000 source items through it, ends with
//! `aggregate(256)` before the sink, and drains it on the bench thread (the consumer):
//!
//! - `noop3_*`: three no-op `pipe` stages (where the single loop's scheduling is the ceiling);
//! - `spin2us_*`, `spin20us_*`: one `pipe_blocking` stage burning 2 or 20 µs of CPU per item,
//!   concurrency 8;
//! - `sleep1ms_sharded`: one stage awaiting a 1 ms timer per item, concurrency 256 in total;
//! - `spin2us_bare_threads`: the physical reference for `spin2us_*`: one plain thread per CPU,
//!   pinned, burning 2 µs per item for its share of the items, no pipeline at all;
//! - `noop3_sharded_indexed`, `spin2us_sharded_indexed`: the same pipelines started with
//!   `source_indexed` (every shard makes its own items) instead of an iterator on shard 0.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardpipe::pipeline::{PipelineBuilder, Placement, source, source_indexed};

const ITEMS: u64 = 100_000;

fn single() -> Placement {
    Placement::single_loop()
}

fn sharded() -> Placement {
    Placement::sharded()
}

/// Burns `d` of CPU on the calling thread.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Builds `b` on `p`, drains it, and checks that every item arrived.
fn run(b: PipelineBuilder<Vec<u64>>, p: Placement) {
    let mut pipe = b.build(p).expect("pipeline");
    let mut n = 0;
    for batch in pipe.iter() {
        n += batch.len() as u64;
        black_box(batch);
    }
    assert_eq!(n, ITEMS, "every item must arrive");
}

/// The bench's source items, from an iterator on shard 0 or made on every shard.
fn items(indexed: bool) -> PipelineBuilder<u64> {
    if indexed { source_indexed(ITEMS, |i| i) } else { source(0..ITEMS) }
}

fn noop3(indexed: bool) -> PipelineBuilder<Vec<u64>> {
    items(indexed).pipe(Some).pipe(Some).pipe(Some).aggregate(256)
}

fn spin_stage(us: u64) -> PipelineBuilder<Vec<u64>> {
    spin_stage_from(us, false)
}

fn spin_stage_from(us: u64, indexed: bool) -> PipelineBuilder<Vec<u64>> {
    let d = Duration::from_micros(us);
    items(indexed)
        .pipe_blocking(move |x| {
            spin(d);
            Some(x)
        })
        .concurrency(8)
        .aggregate(256)
}

fn sleep1ms() -> PipelineBuilder<Vec<u64>> {
    source(0..ITEMS)
        .pipe_async(|x| async move {
            shardpipe::time::sleep(Duration::from_millis(1)).await;
            Some(x)
        })
        .concurrency(256)
        .aggregate(256)
}

/// Every CPU burns `d` per item for its share of `ITEMS`, on plain pinned threads: what the
/// machine gives a spin stage with no pipeline around it.
fn bare_threads_spin(d: Duration) {
    let cores = core_affinity::get_core_ids().expect("affinity mask");
    let per_core = ITEMS / cores.len() as u64;
    let threads: Vec<_> = cores
        .into_iter()
        .map(|core| {
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                for _ in 0..per_core {
                    spin(d);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("spinner"));
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(10);
    g.bench_function("noop3_single", |b| b.iter(|| run(noop3(false), single())));
    g.bench_function("noop3_sharded", |b| b.iter(|| run(noop3(false), sharded())));
    g.bench_function("noop3_sharded_indexed", |b| b.iter(|| run(noop3(true), sharded())));
    g.bench_function("spin2us_single", |b| b.iter(|| run(spin_stage(2), single())));
    g.bench_function("spin2us_sharded", |b| b.iter(|| run(spin_stage(2), sharded())));
    g.bench_function("spin2us_sharded_indexed", |b| b.iter(|| run(spin_stage_from(2, true), sharded())));
    g.bench_function("spin2us_bare_threads", |b| b.iter(|| bare_threads_spin(Duration::from_micros(2))));
    g.measurement_time(Duration::from_secs(12));
    g.bench_function("spin20us_single", |b| b.iter(|| run(spin_stage(20), single())));
    g.bench_function("spin20us_sharded", |b| b.iter(|| run(spin_stage(20), sharded())));
    g.bench_function("spin20us_bare_threads", |b| b.iter(|| bare_threads_spin(Duration::from_micros(20))));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("sleep1ms_sharded", |b| b.iter(|| run(sleep1ms(), sharded())));
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
