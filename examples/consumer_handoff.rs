//! How cheap the hand-off to the consumer is (SPDL's default costs 200–290 µs at p50):
//!
//! 1. **Ready**: items already wait in the sink rings (the source is done); the time per
//!    `recv()` that returns one.
//! 2. **Idle** (sharded): one item at a time through an idle pipeline (every thread parked), from
//!    the moment the source emits it to the moment `recv()` returns it on the consumer thread.
//!    The source waits for a token from the consumer before each item, on shard 0; the stage and
//!    the sink run on shard 1, so the wait never blocks the item's path.
//!
//! Run: `cargo run --release --example consumer_handoff`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardpipe::pipeline::{Placement, fmt_ns, source};

fn ready(placement: Placement) -> Result<f64, Box<dyn std::error::Error>> {
    let mut per_item = Vec::new();
    for _ in 0..20 {
        // 1000 items fit the sink rings: once the source is done, every recv() finds one waiting.
        let mut pipe = source(0..1000u64).sink(1024).build(placement)?;
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(pipe.recv());
        }
        per_item.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    per_item.sort_by(f64::total_cmp);
    Ok(per_item[per_item.len() / 2])
}

fn idle(rounds: u64) -> Result<shardpipe::pipeline::Report, Box<dyn std::error::Error>> {
    let (token_tx, token_rx) = mpsc::channel::<()>();
    let items = (0..rounds).inspect(move |_| {
        let _ = token_rx.recv();
    });
    let mut pipe = source(items).map(|x| x).on_shards([1]).build(Placement::Sharded { shards: 2 })?;
    for _ in 0..rounds {
        token_tx.send(())?;
        pipe.recv().ok_or("the pipeline ended early")?;
        if std::env::var("TRACE").is_ok() {
            eprintln!("got one");
        }
        std::thread::sleep(Duration::from_micros(200)); // every thread parks before the next
    }
    drop(token_tx);
    Ok(pipe.finish()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in [Placement::single_loop(), Placement::sharded()] {
        println!("{:<11} ready hand-off: {:.0} ns per recv() (median of 20 runs × 1000 items)", p.label(), ready(p)?);
    }
    let r = idle(5000)?;
    let l = r.latency;
    println!(
        "sharded     idle hand-off, emission → recv() returns: p50 {} p90 {} p99 {} max {} ({} items)",
        fmt_ns(l.p50),
        fmt_ns(l.p90),
        fmt_ns(l.p99),
        fmt_ns(l.max),
        l.count
    );
    Ok(())
}
