//! Image batches built as the images arrive (`images::batches`, a `BatchCollector` in the
//! `batch` stage) on many shards: the shards' incomplete batches move up the merge tree as slots,
//! every slot holds the image its sample names, and an image of another size fails alone.

mod common;

use std::sync::Arc;

use common::{assert_balanced, many_shards};
use shardpipe::Runtime;
use shardpipe::images::{CHANNELS, Image, Sample, batches};
use shardpipe::pipeline::{PipelineBuilder, source_epochs};

/// The epochs' lengths: none a multiple of 64, and the last shorter than one chunk per shard.
const LENS: [u64; 3] = [1000, 997, 50];

fn build<T: Send + 'static>(b: PipelineBuilder<T>, rt: &Arc<Runtime>) -> shardpipe::pipeline::Pipeline<T> {
    b.build_on(rt).expect("the pipeline starts on a running runtime")
}

/// Image `i` of epoch `e`: 6×4, its values a function of both, so a batch's slots can be checked.
fn image(e: u64, i: u64) -> Image<u8> {
    let path = std::path::Path::new(&format!("e{e}/{i}.jpg")).into();
    let sample = Sample { index: i, epoch: e, path, label: None };
    let data = (0..6 * 4 * CHANNELS as u64).map(|v| (v * 3 + i * 7 + e * 11) as u8).collect();
    Image { sample, width: 6, height: 4, data }
}

#[test]
fn image_batches_built_as_images_arrive_merge_their_rests_across_shards() {
    for n in [2, 7] {
        let Some(rt) = many_shards(n) else { return };
        let source = source_epochs(|e| LENS.get(e as usize).map(move |&len| (0..len).map(move |i| image(e, i))));
        let mut pipe = build(batches(source, 64, false), &rt);
        for e in 0..3u64 {
            let mut seen = Vec::new();
            let mut short = Vec::new();
            for batch in pipe.epoch() {
                assert_eq!(batch.shape[1..], [4, 6, 3]);
                if batch.len() < 64 {
                    short.push(batch.len());
                }
                // Every slot holds the image its sample names.
                for (s, values) in batch.samples.iter().zip(batch.data.chunks_exact(72)) {
                    assert_eq!(values, image(e, s.index).data, "{n} shards, epoch {e}, image {}", s.index);
                    seen.push(s.index);
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..LENS[e as usize]).collect::<Vec<_>>(), "{n} shards, epoch {e}: every image once");
            assert_eq!(short, [LENS[e as usize] as usize % 64], "{n} shards, epoch {e}: one short batch");
        }
        let r = pipe.finish().unwrap();
        assert_eq!(r.account.delivered, LENS.iter().sum::<u64>(), "{n} shards");
        assert_balanced(&r);
    }
}

#[test]
fn an_image_of_another_size_fails_alone_and_the_account_balances() {
    // One shard: its batches start at items 0, 64, 128, …, none of them odd (an odd first
    // image would make its batch's size the odd one, and fail the rest of that batch instead).
    let Some(rt) = many_shards(1) else { return };
    let odd = |i: u64| if i % 100 == 7 { image(0, i).data.len() / 2 } else { 0 };
    let source = source_epochs(move |e| {
        (e == 0).then(|| {
            (0..1000u64).map(move |i| {
                let mut img = image(0, i);
                if odd(i) > 0 {
                    (img.width, img.height) = (3, 4);
                    img.data.truncate(odd(i));
                }
                img
            })
        })
    });
    let mut pipe = build(batches(source, 64, false), &rt);
    let delivered: u64 = pipe.iter().map(|b| b.len() as u64).sum();
    let r = pipe.finish().expect("no failure limit set");
    let batch = r.stages.iter().find(|s| s.name == "batch").expect("a batch stage");
    assert_eq!(batch.stats.failures, 10, "images 7, 107, …, 907 fail, each alone");
    let msg = batch.failure_samples.first().expect("a failure sample");
    assert!(msg.contains("is (3, 4) but the batch's first is (6, 4)") && msg.contains(".jpg"), "{msg}");
    assert_eq!((r.account.failed, delivered), (10, 990), "the rest is delivered");
    assert_eq!(r.account.delivered, delivered);
    assert_balanced(&r);
}

#[test]
fn view_batches_built_as_views_arrive_keep_every_view_in_step_across_shards() {
    use shardpipe::images::view_batches;
    let Some(rt) = many_shards(7) else { return };
    // Two views per image: itself, and a 2×3 image of its own values.
    let views = |e: u64, i: u64| {
        let small = Image { data: image(e, i).data[..18].to_vec(), width: 2, height: 3, ..image(e, i) };
        vec![image(e, i), small]
    };
    let source = source_epochs(move |e| LENS.get(e as usize).map(move |&len| (0..len).map(move |i| views(e, i))));
    let mut pipe = build(view_batches(source, 2, 64, true, shardpipe::images::Layout::Hwc), &rt);
    for e in 0..3u64 {
        let mut seen = Vec::new();
        for batch in pipe.epoch() {
            assert_eq!(batch.len(), 64, "drop_last: only full batches");
            let (big, small) = (&batch.views[0], &batch.views[1]);
            assert_eq!(big.samples, small.samples, "both views in the same sample order");
            for (k, s) in big.samples.iter().enumerate() {
                let want = views(e, s.index);
                assert_eq!(big.data[k * 72..][..72], want[0].data, "epoch {e}, image {}", s.index);
                assert_eq!(small.data[k * 18..][..18], want[1].data, "epoch {e}, image {}", s.index);
                seen.push(s.index);
            }
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len() as u64, LENS[e as usize] / 64 * 64, "epoch {e}: every full batch, no image twice");
    }
    let r = pipe.finish().unwrap();
    assert_eq!(r.account.left_over, LENS.iter().map(|l| l % 64).sum::<u64>());
    assert_balanced(&r);
}
