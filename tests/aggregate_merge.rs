//! `aggregate(n)` on many shards: the shards' incomplete batches merge up a tree, so each epoch
//! still has at most one short batch (none left but fewer than `n` items under `drop_last`), and
//! no item is lost or delivered twice, whatever the tree's depth.

mod common;

use std::sync::Arc;

use common::{assert_balanced, many_shards};
use shardpipe::Runtime;
use shardpipe::pipeline::{PipelineBuilder, source_epochs};

/// The epochs' lengths: none a multiple of 64, and the last shorter than one chunk per shard.
const LENS: [u64; 3] = [1000, 997, 50];

/// Three epochs of [`LENS`] items, each item tagged with its epoch.
fn three_epochs() -> PipelineBuilder<u64> {
    source_epochs(|e| LENS.get(e as usize).map(move |&n| (0..n).map(move |x| x + 10_000 * e))).map(|x| x + 1)
}

fn expected(e: u64) -> Vec<u64> {
    (0..LENS[e as usize]).map(|x| x + 1 + 10_000 * e).collect()
}

fn build<T: Send + 'static>(b: PipelineBuilder<T>, rt: &Arc<Runtime>) -> shardpipe::pipeline::Pipeline<T> {
    b.build_on(rt).expect("the pipeline starts on a running runtime")
}

#[test]
fn on_many_shards_each_epoch_has_one_short_batch_and_every_item_once() {
    // 2: a root and a leaf; 7: two full levels below the root; 12: a ragged third level.
    for n in [2, 7, 12] {
        let Some(rt) = many_shards(n) else { return };
        let mut pipe = build(three_epochs().aggregate(64), &rt);
        for e in 0..3u64 {
            let batches: Vec<Vec<u64>> = pipe.epoch().collect();
            let mut items: Vec<u64> = batches.iter().flatten().copied().collect();
            items.sort_unstable();
            assert_eq!(items, expected(e), "{n} shards, epoch {e}: every item once");
            let short: Vec<usize> = batches.iter().map(Vec::len).filter(|&l| l < 64).collect();
            // No epoch's length is a multiple of 64, so each has exactly one short batch.
            assert_eq!(short, [expected(e).len() % 64], "{n} shards, epoch {e}: one short batch, of the rest");
        }
        assert_eq!(pipe.epoch().count(), 0, "the stream ended after three epochs");
        let r = pipe.finish().unwrap();
        let total: u64 = LENS.iter().sum();
        assert_eq!((r.account.produced, r.account.delivered), (total, total), "{n} shards");
        assert_balanced(&r);
    }
}

#[test]
fn on_many_shards_drop_last_leaves_fewer_than_a_batch_per_epoch() {
    for n in [3, 7, 12] {
        let Some(rt) = many_shards(n) else { return };
        let mut pipe = build(three_epochs().aggregate(64).drop_last(), &rt);
        let mut delivered = Vec::new();
        for e in 0..3u64 {
            let batches: Vec<Vec<u64>> = pipe.epoch().collect();
            assert!(batches.iter().all(|b| b.len() == 64), "{n} shards, epoch {e}: only full batches");
            assert_eq!(batches.len(), expected(e).len() / 64, "{n} shards, epoch {e}: every full batch made");
            delivered.extend(batches.into_iter().flatten());
        }
        let r = pipe.finish().unwrap();
        assert_eq!(r.account.left_over, LENS.iter().map(|l| l % 64).sum::<u64>(), "{n} shards");
        assert_balanced(&r);
        let total = delivered.len();
        delivered.sort_unstable();
        delivered.dedup();
        assert_eq!(delivered.len(), total, "{n} shards: no item twice");
    }
}
