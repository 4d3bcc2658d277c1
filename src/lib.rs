//! # shardpipe
//!
//! A thread-per-core sharded executor for data-loading pipelines. Every shard is a thread pinned
//! to one CPU that runs its own executor and its own io_uring; shards hand items to each other
//! through lock-free single-producer/single-consumer rings that a busy shard crosses without a
//! syscall.
//!
//! ```text
//!   ┌──────── shard 0 (CPU 0) ────────┐        ┌──────── shard 1 (CPU 1) ────────┐
//!   │ tasks ◀─ local queue ◀─ inbox ◀─┼─wake───┼─ ...                            │
//!   │   │  ops ▶ io_uring ▶ completions│        │                                 │
//!   │   └─ send ▶ ring 0→1 ───────────┼───────▶┼─ recv ▶ tasks                   │
//!   └─────────────────────────────────┘        └─────────────────────────────────┘
//! ```
//!
//! ## Cargo features
//!
//! - `images` (default): the `images` module, the image loader (JPEG, PNG, WebP, GIF, BMP and TIFF decode, resize,
//!   collation into batches, generated data sets).
//! - `cli` (default, needs `images`): the `shardpipe` command and its dependencies (clap, serde,
//!   toml, indicatif).
//!
//! With `default-features = false` the library builds on io-uring, async-task, crossbeam,
//! core_affinity, hdrhistogram, thiserror and libc alone.
//!
//! ```no_run
//! use shardpipe::{Runtime, channel};
//!
//! let rt = Runtime::builder().shards(2).build()?;
//! let (tx, rx) = channel::bounded::<u64>(1024);
//! let producer = rt.run_on(0, move || async move {
//!     let tx = tx.connect();
//!     for i in 0..1000 { tx.send(i).await.unwrap(); }
//! })?;
//! let consumer = rt.run_on(1, move || async move {
//!     let rx = rx.connect();
//!     let mut sum = 0;
//!     while let Some(v) = rx.recv().await { sum += v; }
//!     sum
//! })?;
//! producer.join()?;
//! assert_eq!(consumer.join()?, 499_500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod channel;
pub(crate) mod driver;
#[cfg(feature = "images")]
pub mod images;
pub mod io;
pub mod pipeline;
pub mod runtime;
pub mod stats;
pub(crate) mod sync;
pub(crate) mod sys;
pub mod trace;

pub use driver::{DriverChoice, DriverStats, RingMode, UringUnavailable};
pub use runtime::time;
pub use runtime::{
    BuildError, Builder, JoinError, JoinHandle, RunError, Runtime, ShardInfo, ShardReport, SpawnError, current_shard,
    spawn_local, try_spawn_local, yield_now,
};
