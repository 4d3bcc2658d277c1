//! The image loader against what the cores can physically decode (see docs/benchmarks.md).
//! 512 generated ImageNet-like JPEGs (`shardpipe::images::synth`, seed 1) per iteration:
//!
//! - `decode_resize_one_core`: zune-jpeg decode + center-crop/resize to 224×224 in a plain
//!   loop over in-memory bytes on one thread: the physical reference;
//! - `decode_resize_bare_threads`: the same loop on one plain pinned thread per CPU, each
//!   taking every n-th image: what the cores reach together without any pipeline;
//! - `pipeline_single`, `pipeline_sharded`: the whole loader, files → io_uring read → decode →
//!   resize 224 → batches of 32, each image written into its `[32, 224, 224, 3]` batch as it arrives
//!   (`images::batches`), drained by the bench thread.
//!
//! The process first calls `shardpipe::runtime::retain_freed_memory()`, as a loader program
//! does, so every function here runs with glibc's thresholds fixed high (the one-core reference
//! measures the same either way; see docs/benchmarks.md, session 26).
//!
//! Group `collate` turns 32 resized 224×224 images into one batch, the buffer reused through a
//! `BatchPool` as in the loader; only the collation is timed (cloning the inputs is not):
//! `u8_hwc` (`collate`), `u8_chw` (`collate_layout`), `normalize_then_collate_f32_hwc` (a
//! `normalize` per image, then `collate`: the two-stage way), `normalized_f32_hwc` and
//! `normalized_f32_chw` (`collate_normalized`: one pass).
//!
//! Group `augment` draws and applies training crops to the same 32 images, decoded (not
//! resized), output 224×224: `crop_flip` (`Augment::new(7)`), `crop_flip_jitter`
//! (`color_jitter(0.4, 0.4, 0.4, 0.0)`, timm's default), `crop_flip_jitter_hue` (hue 0.1 too),
//! `crop_bicubic` (the crop resized with `Resample::Bicubic`) and `dino_global` (DINO's first
//! global view: scale 0.4–1, bicubic, jitter (0.4, 0.4, 0.2, 0.1) at p 0.8, grayscale at 0.2,
//! always blurred with a radius from 0.1–2) and `dino_global_kernel9` (the same with
//! torchvision's `GaussianBlur(9, σ)`, DINOv2's blur, instead of Pillow's).
//!
//! Group `autoaugment` applies automatic augmentation to the same 32 images, resized to 224²,
//! each timed on its own just after it is copied (in cache, as a resize stage's output is):
//! `timm_rand_m9_mstd05_inc1` (timm's recipe, `RandAugment::timm`), `ta_wide`
//! (`RandAugment::trivial_wide`), `timm_original` and `timm_3a` (timm's AutoAugment tables),
//! `augmix_m3_w3` (timm's AugMix defaults), and single operations at a strong magnitude:
//! `rotate_nearest`, `rotate_bilinear`, `rotate_bicubic` (27°), `shear_x_bilinear`,
//! `shear_x_bicubic` (factor 0.2), `shear_y_bicubic` (−0.25), `translate_y_bilinear` (−40.3
//! pixels), `equalize`, `color` and
//! `sharpness` (factor 1.8), `gaussian_blur` (radius 1).
//!
//! Group `images_png` runs `decode_resize_one_core` and the two pipelines on the same 512 images
//! written as PNG (the `png` crate's default compression, ~230 KB each): the loader on a PNG
//! dataset.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardpipe::images::{
    Augment, AugmentOp, AugmentPolicy, BatchPool, Encoded, Erasing, Fill, IMAGENET_MEAN_FILL, Image, ImageBatch,
    ImageFolder, ImageFormat, Layout, LoaderOptions, Mixup, Normalize, RandAugment, Resample, Sample, batches,
    collate_layout, collate_normalized, decode, loader, normalize, resize, synth,
};
use shardpipe::pipeline::Placement;

const IMAGES: u64 = 512;

/// The set, written once per machine (it is deterministic) under the temp directory.
fn dataset(format: ImageFormat) -> PathBuf {
    let name = match format {
        ImageFormat::Jpeg => "shardpipe-bench-images-512-seed1".to_owned(),
        other => format!("shardpipe-bench-images-512-seed1-{}", other.extension()),
    };
    let dir = std::env::temp_dir().join(name);
    let done = dir.join(".complete");
    if !done.exists() {
        synth::write_set_as(format, &dir, IMAGES, 1, 10).expect("write the bench set");
        std::fs::write(&done, b"").expect("mark the set complete");
    }
    dir
}

fn decode_resize_all(files: &[(Sample, Vec<u8>)]) {
    for (sample, bytes) in files {
        let img = decode(Encoded { sample: sample.clone(), bytes: bytes.clone() }).expect("decode");
        black_box(resize(img, 224, 224).expect("resize"));
    }
}

/// Every CPU decodes and resizes its share of the in-memory files on a plain pinned thread: what
/// the cores do together with no pipeline at all (shared caches, memory bandwidth, and a host
/// that may not give two vCPUs two whole cores).
fn decode_resize_bare_threads(files: &Arc<Vec<(Sample, Vec<u8>)>>, cores: &[core_affinity::CoreId]) {
    let n = cores.len();
    let threads: Vec<_> = cores
        .iter()
        .enumerate()
        .map(|(i, &core)| {
            let files = files.clone();
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                let mine: Vec<_> = files.iter().skip(i).step_by(n).cloned().collect();
                decode_resize_all(&mine);
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("decoder thread"));
}

fn run_loader(folder: &ImageFolder, p: Placement) {
    let opts = LoaderOptions { width: 224, height: 224, ..LoaderOptions::default() };
    let mut pipe = batches(loader(folder.clone(), &opts), 32, false).build(p).expect("pipeline");
    let mut n = 0;
    for batch in pipe.iter() {
        assert_eq!(batch.shape[1..], [224, 224, 3]);
        n += batch.len() as u64;
        black_box(batch);
    }
    assert_eq!(n, IMAGES, "every image must arrive");
}

fn images(c: &mut Criterion) {
    // As a loader program starts (docs/data-loading.md): freed image buffers stay in the process.
    // Process-wide, so every function of every group runs with it, the references included.
    match shardpipe::runtime::retain_freed_memory() {
        Ok(setting) => eprintln!("allocator: {setting:?}"),
        Err(e) => eprintln!("allocator: left as it is: {e}"),
    }
    group(c, "images", ImageFormat::Jpeg, true);
    group(c, "images_png", ImageFormat::Png, false);
    collate_group(c);
}

const BATCH: usize = 32;

/// Times `op` on a fresh clone of `input` per iteration; the clone and the output's drop (a
/// batch's buffer going back to its pool) are outside the timing.
fn timed<I: Clone, B>(iters: u64, input: &I, op: impl Fn(I) -> B) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = input.clone();
        let start = Instant::now();
        let out = black_box(op(input));
        total += start.elapsed();
        drop(out);
    }
    total
}

/// Times `op` on each image of `images`, cloned just before (outside the timing) as a resize
/// stage hands its fresh output to the next step: in cache, as in the loader.
fn timed_each<B>(iters: u64, images: &[Image<u8>], op: impl Fn(Image<u8>) -> B) -> Duration {
    images.iter().map(|image| timed(iters, image, &op)).sum()
}

/// `batch` with a class for every sample.
fn labelled<T>(mut batch: ImageBatch<T>) -> ImageBatch<T> {
    batch.samples.iter_mut().enumerate().for_each(|(i, s)| s.label = Some(i as u32 % 1000));
    batch
}

fn collate_group(c: &mut Criterion) {
    let dir = dataset(ImageFormat::Jpeg);
    let folder = ImageFolder::open(&dir).expect("bench set");
    let decoded: Vec<Image<u8>> = folder.samples()[..BATCH]
        .iter()
        .map(|s| decode(Encoded { sample: s.clone(), bytes: std::fs::read(&s.path).expect("read") }).expect("decode"))
        .collect();
    let images: Vec<Image<u8>> = decoded.iter().map(|img| resize(img.clone(), 224, 224).expect("resize")).collect();
    let n = Normalize::IMAGENET;
    let mut g = c.benchmark_group("collate");
    g.throughput(Throughput::Elements(BATCH as u64));
    let bytes = BatchPool::new(2);
    g.bench_function("u8_hwc", |b| b.iter_custom(|k| timed(k, &images, |i| bytes.collate(i).expect("collate"))));
    g.bench_function("u8_chw", |b| {
        b.iter_custom(|k| timed(k, &images, |i| bytes.collate_layout(i, Layout::Chw).expect("collate")))
    });
    let floats = BatchPool::new(2);
    g.bench_function("normalize_then_collate_f32_hwc", |b| {
        b.iter_custom(|k| {
            timed(k, &images, |i| {
                floats.collate(i.into_iter().map(|img| normalize(img, &n)).collect()).expect("collate")
            })
        })
    });
    for (name, layout) in [("normalized_f32_hwc", Layout::Hwc), ("normalized_f32_chw", Layout::Chw)] {
        g.bench_function(name, |b| {
            b.iter_custom(|k| timed(k, &images, |i| floats.collate_normalized(i, &n, layout).expect("collate")))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("mixup");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mixup = Mixup::new(3, 1000).expect("classes").cutmix_alpha(0.0).expect("mixup on");
    let cutmix = Mixup::new(3, 1000).expect("classes").mixup_alpha(0.0).expect("cutmix on");
    let floats = labelled(collate_normalized(images.clone(), &n, Layout::Chw).expect("collate"));
    let bytes = labelled(collate_layout(images.clone(), Layout::Hwc).expect("collate"));
    let mix = |m: Mixup| move |batch| m.apply(batch).expect("labelled");
    g.bench_function("mixup_f32_chw", |b| b.iter_custom(|k| timed(k, &floats, mix(mixup))));
    g.bench_function("cutmix_f32_chw", |b| b.iter_custom(|k| timed(k, &floats, mix(cutmix))));
    let mix_bytes = |batch| mixup.apply(batch).expect("labelled");
    g.bench_function("mixup_u8_hwc", |b| b.iter_custom(|k| timed(k, &bytes, mix_bytes)));
    g.finish();

    let mut g = c.benchmark_group("erasing");
    g.throughput(Throughput::Elements(BATCH as u64));
    let recipe = Erasing::new(5).prob(0.25).expect("prob").fill(Fill::PerPixel);
    for (name, erasing) in [
        ("recipe_pixel_f32_chw", recipe),
        ("always_pixel_f32_chw", recipe.prob(1.0).expect("prob")),
        ("always_zero_f32_chw", recipe.prob(1.0).expect("prob").fill(Fill::Zero)),
    ] {
        g.bench_function(name, |b| b.iter_custom(|k| timed(k, &floats, |batch| erasing.apply(batch))));
    }
    g.finish();

    let mut g = c.benchmark_group("autoaugment");
    g.throughput(Throughput::Elements(BATCH as u64));
    let policy = |name| AugmentPolicy::parse(7, name).expect("a policy name");
    let policies = [
        ("timm_rand_m9_mstd05_inc1", policy("rand-m9-mstd0.5-inc1")),
        ("ta_wide", AugmentPolicy::from(RandAugment::trivial_wide(7))),
        ("timm_original", policy("original")),
        ("timm_3a", policy("3a")),
        ("augmix_m3_w3", policy("augmix-m3-w3")),
    ];
    for (name, policy) in policies {
        g.bench_function(name, |b| b.iter_custom(|k| timed_each(k, &images, |img| policy.apply(img).expect("224²"))));
    }
    let rotate = |resample| AugmentOp::Rotate { degrees: 27.0, resample };
    let ops = [
        ("rotate_nearest", rotate(Resample::Nearest)),
        ("rotate_bilinear", rotate(Resample::Bilinear)),
        ("rotate_bicubic", rotate(Resample::Bicubic)),
        ("shear_x_bilinear", AugmentOp::ShearX { factor: 0.2, resample: Resample::Bilinear }),
        ("shear_x_bicubic", AugmentOp::ShearX { factor: 0.2, resample: Resample::Bicubic }),
        ("shear_y_bicubic", AugmentOp::ShearY { factor: -0.25, resample: Resample::Bicubic }),
        ("translate_y_bilinear", AugmentOp::TranslateY { pixels: -40.3, resample: Resample::Bilinear }),
        ("equalize", AugmentOp::Equalize),
        ("color", AugmentOp::Color(1.8)),
        ("sharpness", AugmentOp::Sharpness(1.8)),
        ("gaussian_blur", AugmentOp::GaussianBlur(1.0)),
    ];
    for (name, op) in ops {
        g.bench_function(name, |b| {
            b.iter_custom(|k| {
                timed_each(k, &images, |mut img| {
                    op.apply(&mut img, IMAGENET_MEAN_FILL);
                    img
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("augment");
    g.throughput(Throughput::Elements(BATCH as u64));
    let crop = Augment::new(7);
    let augments = [
        ("crop_flip", crop),
        ("crop_flip_jitter", crop.color_jitter(0.4, 0.4, 0.4, 0.0).expect("in range")),
        ("crop_flip_jitter_hue", crop.color_jitter(0.4, 0.4, 0.4, 0.1).expect("in range")),
        ("crop_bicubic", crop.resample(Resample::Bicubic)),
        ("dino_global", dino_global()),
        ("dino_global_kernel9", dino_global().blur_kernel(9).expect("odd")),
    ];
    for (name, a) in augments {
        g.bench_function(name, |b| {
            b.iter_custom(|k| {
                timed(k, &decoded, |i| {
                    i.into_iter().map(|img| a.apply(img, 224, 224).expect("augment")).collect::<Vec<_>>()
                })
            })
        });
    }
    g.finish();
}

/// DINO's first global view (`DataAugmentationDINO.global_transfo1`).
fn dino_global() -> Augment {
    let a = Augment::new(7).scale(0.4, 1.0).and_then(|a| a.color_jitter(0.4, 0.4, 0.2, 0.1));
    let a = a.and_then(|a| a.color_jitter_p(0.8)).and_then(|a| a.grayscale(0.2)).and_then(|a| a.blur(1.0, 0.1, 2.0));
    a.expect("in range").resample(Resample::Bicubic)
}

/// One group over the set in `format`; `bare_threads` adds `decode_resize_bare_threads`.
fn group(c: &mut Criterion, name: &str, format: ImageFormat, bare_threads: bool) {
    let dir = dataset(format);
    let folder = ImageFolder::open(&dir).expect("bench set");
    assert_eq!(folder.samples().len() as u64, IMAGES);
    let cores = core_affinity::get_core_ids().expect("affinity mask");
    let files: Vec<(Sample, Vec<u8>)> = folder
        .samples()
        .iter()
        .map(|s| (Sample { path: Arc::clone(&s.path), ..s.clone() }, std::fs::read(&s.path).expect("read")))
        .collect();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(IMAGES));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("decode_resize_one_core", |b| b.iter(|| decode_resize_all(&files)));
    if bare_threads {
        let shared = Arc::new(files.clone());
        g.bench_function("decode_resize_bare_threads", |b| b.iter(|| decode_resize_bare_threads(&shared, &cores)));
    }
    g.bench_function("pipeline_single", |b| b.iter(|| run_loader(&folder, Placement::single_loop())));
    g.bench_function("pipeline_sharded", |b| b.iter(|| run_loader(&folder, Placement::sharded())));
    g.finish();
}

criterion_group!(benches, images);
criterion_main!(benches);
