//! Streams numbers from shard 0 to shard 1 through a cross-shard channel and reads a file through
//! shard 1's io_uring: the smallest tour of the runtime.
//!
//! `cargo run --release --example stream_between_shards`

use std::time::Instant;

use shardpipe::{Runtime, channel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().shards(2).oversubscribe(true).build()?;
    const N: u64 = 10_000_000;
    let (tx, rx) = channel::bounded::<u64>(1024);

    let start = Instant::now();
    let producer = rt.run_on(0, move || async move {
        let tx = tx.connect();
        for i in 0..N {
            tx.send(i).await.expect("the consumer reads to the end");
        }
    })?;
    let consumer = rt.run_on(1, move || async move {
        let rx = rx.connect();
        let mut batch = Vec::with_capacity(1024);
        let mut sum = 0u64;
        while rx.recv_many(&mut batch, 1024).await > 0 {
            sum += batch.drain(..).sum::<u64>();
        }
        sum
    })?;
    producer.join()?;
    let sum = consumer.join()?;
    assert_eq!(sum, N * (N - 1) / 2);
    let secs = start.elapsed().as_secs_f64();
    println!("{N} items shard 0 -> shard 1 in {secs:.3} s ({:.1} ns/item)", secs * 1e9 / N as f64);

    let path = std::env::current_exe()?;
    let len = rt.run_on(1, move || async move { shardpipe::io::read(&path).await.map(|b| b.len()) })?.join()??;
    println!("read {len} bytes of this executable through shard 1's io_uring");
    Ok(())
}
