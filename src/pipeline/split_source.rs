//! The split source ([`source_indexed`](super::source_indexed)): every shard of the first stage
//! makes its own share of the items, so no one shard stamps and deals every item, and no item
//! crosses to another core before its first stage.
//!
//! ```text
//!  cursor (one atomic, chunks of CHUNK indices)
//!    ├─ claim ─▶ shard 0: item(i) for its chunk ─▶ local queue ─▶ stage 1 ─▶ …
//!    └─ claim ─▶ shard 1: item(i) for its chunk ─▶ local queue ─▶ stage 1 ─▶ …
//! ```
//!
//! A shard claims its next chunk only when its first stage has taken what it made (the local
//! queue has room), so a shard that is behind claims fewer: load goes where there is room, as
//! with the dealer. An ordered pipeline claims no chunks: shard `p` of `n` makes chunks
//! `p, p + n, p + 2n, …` and closes each full one with a `Chunk` marker (when `n > 1`), exactly
//! what the ordered dealer would have dealt it, so the ordered merges downstream restore source
//! order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::envelope::{Envelope, Msg, Stamps};
use super::exchange::CHUNK;
use super::queue::LocalSender;
use super::source::pull;
use super::stage::{StageCx, charge, forward_marker};

/// The items to make, and the next chunk nobody has claimed.
pub(crate) struct Split<F> {
    len: u64,
    item: F,
    next_chunk: AtomicU64,
}

impl<F> Split<F> {
    pub(crate) fn new(len: u64, item: F) -> Arc<Self> {
        Arc::new(Self { len, item, next_chunk: AtomicU64::new(0) })
    }

    /// The indices of chunk `c`; empty past the end.
    fn chunk(&self, c: u64) -> std::ops::Range<u64> {
        let start = c.saturating_mul(CHUNK as u64).min(self.len);
        start..start.saturating_add(CHUNK as u64).min(self.len)
    }
}

/// Where one shard's share of a split source goes, and which chunks are its own.
pub(crate) struct SplitShare<T: 'static> {
    pub(crate) out: LocalSender<Msg<T>>,
    /// This shard's place among the first stage's shards, and their count.
    pub(crate) position: usize,
    pub(crate) shards: usize,
    /// Fixed chunks (`position + k * shards`) instead of claimed ones: source order survives.
    pub(crate) ordered: bool,
}

/// Makes this shard's chunks of `split`, stamps each item and queues it for the first stage,
/// until the indices run out or the pipeline stops.
pub(crate) async fn split_source_task<T, F>(split: Arc<Split<F>>, share: SplitShare<T>, cx: StageCx)
where
    T: Send + 'static,
    F: Fn(u64) -> T,
{
    if share.position == 0 {
        cx.control.started_pass(0, Some(split.len));
    }
    let mut own = share.position as u64;
    let mut run = Vec::with_capacity(CHUNK);
    loop {
        let c = if share.ordered {
            let c = own;
            own = own.saturating_add(share.shards as u64);
            c
        } else {
            // Relaxed: the cursor only hands out distinct numbers; the items are made here.
            split.next_chunk.fetch_add(1, Ordering::Relaxed)
        };
        let indices = split.chunk(c);
        let made = (indices.end - indices.start) as usize;
        if made == 0 {
            return;
        }
        // The chunk's items go to the first stage as one run, as a worker's outputs do: that
        // stage runs on this shard, so it could not take them before this task yields anyway.
        for i in indices {
            if cx.control.source_stopped() {
                break;
            }
            let Some(value) = pull(&cx, || (split.item)(i)) else { break };
            run.push(Msg::Item(Envelope { value, stamps: Stamps::One(cx.control.now_ns()) }));
        }
        let complete = run.len() == made;
        cx.received(run.len());
        cx.emit_run(&share.out, &mut run).await;
        if !complete {
            return;
        }
        if share.ordered && share.shards > 1 && made == CHUNK {
            forward_marker(&share.out, Msg::Chunk).await;
        }
        // A chunk is at most one worker batch: the budget is charged per chunk.
        charge(made).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_indices_once_and_end_empty() {
        let s = Split::new(70, |i: u64| i);
        assert_eq!(s.chunk(0), 0..32);
        assert_eq!(s.chunk(1), 32..64);
        assert_eq!(s.chunk(2), 64..70);
        assert!(s.chunk(3).is_empty());
        assert!(s.chunk(u64::MAX).is_empty());
        assert!(Split::new(0, |i: u64| i).chunk(0).is_empty());
    }
}
