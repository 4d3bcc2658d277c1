//! Cross-shard channels: bounded SPSC rings, the async ends built on them, and the mesh.
//!
//! ```text
//!  shard A task ── send ──▶ Producer (private tail) ──publish──▶ ring ──▶ Consumer ── recv ──▶ shard B task
//!                          batch ≥ threshold, or end of A's loop turn      bulk drain
//!                          full? park on send_wait                          empty? park on recv_wait
//! ```
//! [`bounded`] makes a pair of `Send` ends that bind to a thread with `connect()`; a connected end
//! is `!Send` and batches its publication through the shard's end-of-turn flush. [`mesh`] builds
//! one ring per ordered pair of shards.

pub(crate) mod doorbell;
mod mesh;
pub(crate) mod ring;
mod spsc;
pub(crate) mod wait;

#[cfg(all(test, loom))]
mod loom_tests;

pub use mesh::{MeshPeer, MeshReceiver, MeshSender, mesh};
pub use spsc::{
    Receiver, SendError, SendFuture, Sender, SharedReceiver, SharedSender, TryRecvError, TrySendError, bounded,
};
