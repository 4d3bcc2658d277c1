//! A cache-aware loader, SPDL's non-linear pipelines in Rust: `path_variants` sends cached items
//! down a cheap path and the rest through "read" (an async op awaiting a timer, as an io_uring
//! read would) and "decode" (CPU); `merge_pipelines` mixes in a second data set of another item
//! type with its own stage. The pipeline is profiled first (every stage alone at concurrencies
//! 32 … 1, SPDL's profiling mode), then run sharded; both tables are printed.
//!
//! Run: `cargo run --release --example routing`

use std::time::{Duration, Instant};

use shardpipe::pipeline::{PipelineBuilder, Placement, merge_pipelines, path, sub_pipeline};
use shardpipe::time::sleep;

/// Burns `d` of CPU (a stand-in for decoding).
fn burn(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A sample: an id and its size, as a loader would pass on after decoding.
type Sample = (u64, usize);

fn loader() -> PipelineBuilder<Vec<Sample>> {
    let images = sub_pipeline(0..40_000u64, |p| {
        p.path_variants(
            // One id in four is in the cache.
            |id: &u64| usize::from(!id.is_multiple_of(4)),
            [
                path(|hit| hit.map(|id| (id, 1024)).name("from_cache")),
                path(|miss| {
                    miss.pipe_async(|id| async move {
                        sleep(Duration::from_micros(200)).await;
                        Some(id)
                    })
                    .name("read")
                    .concurrency(64)
                    .pipe_blocking(|id| {
                        burn(Duration::from_micros(10));
                        Ok::<_, String>((id, 4096))
                    })
                    .name("decode")
                }),
            ],
        )
        .name("cache")
    });
    // A second data set: captions, another item type, with a stage of its own.
    let captions = sub_pipeline((0..10_000u32).map(|i| format!("caption {i}")), |p| {
        p.map(|text: String| (1_000_000 + text.len() as u64, text.len())).name("tokenize")
    });
    merge_pipelines([images, captions]).aggregate(32).name("batch")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", loader().profile(500, Placement::sharded())?);
    let t = Instant::now();
    let mut pipe = loader().build(Placement::sharded())?;
    let (mut batches, mut samples) = (0u64, 0u64);
    for batch in pipe.iter() {
        batches += 1;
        samples += batch.len() as u64;
    }
    let report = pipe.finish()?;
    println!(
        "{samples} samples in {batches} batches, {:.0} samples/s\n{report}",
        samples as f64 / t.elapsed().as_secs_f64()
    );
    assert!(report.account.balances());
    Ok(())
}
