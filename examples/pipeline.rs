//! A data-loader-shaped pipeline run on both placements, side by side: two epochs of
//! "read" (an async op awaiting a timer, as an io_uring read would) → "decode" (a blocking op
//! burning CPU) → "augment" (a cheap op that drops a few items) → batches of 32, consumed by
//! this thread as a training loop would.
//!
//! Run: `cargo run --release --example pipeline`

use std::time::{Duration, Instant};

use shardpipe::pipeline::{PipelineBuilder, Placement, source_epochs};
use shardpipe::time::sleep;

/// Burns `d` of CPU (a stand-in for decoding).
fn burn(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn loader() -> PipelineBuilder<Vec<u64>> {
    source_epochs(|epoch| (epoch < 2).then_some(0..20_000u64))
        .pipe_async(|i| async move {
            sleep(Duration::from_micros(200)).await;
            Some(i)
        })
        .name("read")
        .concurrency(64)
        .pipe_blocking(|i| {
            burn(Duration::from_micros(20));
            if i % 1000 == 999 { Err(format!("item {i}: corrupt")) } else { Ok(i) }
        })
        .name("decode")
        .concurrency(8)
        .max_failures(100)
        .pipe(|i| (i % 97 != 0).then_some(i))
        .name("augment")
        .aggregate(32)
        .name("batch")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for placement in [Placement::single_loop(), Placement::sharded()] {
        let mut pipe = loader().build(placement)?;
        for epoch in 0..2 {
            let t = Instant::now();
            let images: usize = pipe.epoch().map(|batch| batch.len()).sum();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{} epoch {epoch}: {images} items in {secs:.3} s ({:.0} items/s)",
                placement.label(),
                images as f64 / secs
            );
        }
        match pipe.finish() {
            Ok(report) => println!("{report}"),
            Err(failed) => println!("{failed}\n{}", failed.report),
        }
    }
    Ok(())
}
