//! An image loader shaped like a training loop: a folder of JPEGs (generated on first run),
//! shuffled per epoch, read through io_uring, decoded, randomly cropped, flipped and resized to
//! 224×224 (training crops, new each epoch), normalized to f32 and collated channels-first into
//! `[32, 3, 224, 224]` batches in one pass (what a PyTorch model takes); two epochs on the sharded
//! placement, then the same on a single loop, with images/s and the stage stats.
//!
//! Run: `cargo run --release --example image_loader [DIR]` (default: a generated set of 1024
//! images in the temp directory).

use std::time::Instant;

use shardpipe::images::{
    Augment, Crop, ImageBatch, ImageFolder, Layout, LoaderOptions, Normalize, loader, normalized_batches, synth,
};
use shardpipe::pipeline::Placement;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Freed image buffers stay in the process instead of faulting in again (docs/data-loading.md).
    if let Err(e) = shardpipe::runtime::retain_freed_memory() {
        println!("allocator left as it is: {e}");
    }
    let dir = match std::env::args().nth(1) {
        Some(d) => d.into(),
        None => {
            let dir = std::env::temp_dir().join("shardpipe-example-images");
            if ImageFolder::open(&dir).is_err() {
                println!("writing 1024 images to {} ...", dir.display());
                synth::write_set(&dir, 1024, 7, 10)?;
            }
            dir
        }
    };
    let folder = ImageFolder::open(&dir)?.shuffle(42);
    println!("{}: {} images in {} classes", dir.display(), folder.samples().len(), folder.classes().len());
    for placement in [Placement::sharded(), Placement::single_loop()] {
        // Training crops: a random resized crop and flip per image, new each epoch.
        let opts = LoaderOptions {
            epochs: Some(2),
            max_failures: Some(16),
            crop: Crop::Random(Augment::new(7)),
            ..LoaderOptions::default()
        };
        let images = loader(folder.clone(), &opts);
        let batches = normalized_batches(images, 32, false, Normalize::IMAGENET, Layout::Chw);
        let mut pipe = batches.build(placement)?;
        let start = Instant::now();
        for epoch in 0..2 {
            let t = Instant::now();
            let (mut images, mut checksum) = (0usize, 0.0f64);
            let mut items = pipe.epoch();
            while let Some(batch) = items.next() {
                // The training step would run here; touch the batch so it is really used.
                let batch: ImageBatch<f32> = batch;
                checksum += f64::from(batch.data[batch.data.len() / 2]);
                images += batch.len();
                // A progress log, every 8 batches (the epoch's length comes from the folder).
                if images % (8 * 32) == 0
                    && let Some(done) = items.progress().fraction()
                {
                    println!("{:<12} epoch {epoch}: {:.0}%", placement.label(), done * 100.0);
                }
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:<12} epoch {epoch}: {images} images in {secs:.2} s = {:.0} images/s (checksum {checksum:.3})",
                placement.label(),
                images as f64 / secs
            );
        }
        let report = pipe.finish()?;
        println!("{} total: {:.2} s\n{report}", placement.label(), start.elapsed().as_secs_f64());
    }
    Ok(())
}
