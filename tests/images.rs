//! The image loader end to end on generated JPEG sets: pixels against a reference decoder,
//! batch shapes and order, shuffling, rank partitions, and bad files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::images::{
    AugMix, Augment, Crop, Encoded, Erasing, Fill, Image, ImageBatch, ImageFolder, Layout, LoaderOptions, LoaderState,
    Mix, MixedBatch, Mixup, Normalize, RandAugment, Sample, View, ViewBatch, Views, batches, decode, erased, loader,
    loader_views, mixed, normalized_batches, resize, resize_center, synth, view_batches,
};
use shardpipe::pipeline::Placement;

/// Images in the shared set, in 4 classes.
const COUNT: u64 = 48;

/// One generated set for the whole test binary.
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("shardpipe-test-images-{}", std::process::id()));
        synth::write_set(&dir, COUNT, 11, 4).expect("write the test set");
        dir
    })
}

fn sample_of(path: &Path) -> Sample {
    Sample { index: 0, epoch: 0, path: Arc::from(path), label: None }
}

/// What the loader must produce for one file: decode, then resize, done directly.
fn expected(path: &Path, w: u32, h: u32) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    resize(decode(Encoded { sample: sample_of(path), bytes }).unwrap(), w, h).unwrap().data
}

#[test]
fn decoded_pixels_match_an_independent_reference_decoder() {
    let folder = ImageFolder::open(dataset()).unwrap();
    for s in folder.samples().iter().take(6) {
        let bytes = std::fs::read(&s.path).unwrap();
        let mut reference = jpeg_decoder::Decoder::new(bytes.as_slice());
        let want = reference.decode().unwrap();
        let info = reference.info().unwrap();
        let got = decode(Encoded { sample: s.clone(), bytes }).unwrap();
        assert_eq!((got.width, got.height), (u32::from(info.width), u32::from(info.height)));
        assert_eq!(got.data.len(), want.len());
        // Two correct decoders differ only in IDCT rounding and chroma upsampling.
        let diffs: Vec<u8> = got.data.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let close = diffs.iter().filter(|&&d| d <= 4).count() as f64 / diffs.len() as f64;
        assert!(mean < 1.5 && close > 0.99, "{}: mean abs diff {mean:.3}, {close:.4} within 4", s.path.display());
    }
}

#[test]
fn the_folder_lists_classes_and_labels_from_sub_directories() {
    let folder = ImageFolder::open(dataset()).unwrap();
    assert_eq!(folder.classes(), ["class-000", "class-001", "class-002", "class-003"]);
    assert_eq!(folder.samples().len() as u64, COUNT);
    for s in folder.samples() {
        let class = s.path.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert_eq!(folder.classes()[s.label.unwrap() as usize], class);
    }
}

/// A list file naming the set (relative paths and class names, or numbers) is the folder:
/// the same samples, labels and classes, and the loader takes every image, labelled; a listed
/// file that is missing is a counted `read` failure naming it.
#[test]
fn an_image_list_reads_as_the_folder_and_its_missing_files_are_counted_failures() {
    let dir = dataset();
    let folder = ImageFolder::open(dir).unwrap();
    // The lists live apart from the set (a list in it would be a sample of the folder).
    let lists = std::env::temp_dir().join(format!("shardpipe-test-lists-{}", std::process::id()));
    std::fs::create_dir_all(&lists).unwrap();
    let relative = |s: &Sample| {
        format!("../{}/{}", dir.file_name().unwrap().display(), s.path.strip_prefix(dir).unwrap().display())
    };
    let by_name: String = folder
        .samples()
        .iter()
        .map(|s| format!("{} {}\n", relative(s), folder.classes()[s.label.unwrap() as usize]))
        .collect();
    let names = lists.join("train.txt");
    std::fs::write(&names, format!("# path class\n{by_name}")).unwrap();
    let listed = ImageFolder::from_list(&names).unwrap();
    let same_files = |a: &[Sample], b: &[Sample]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| (a.index, a.label) == (b.index, b.label) && a.path.canonicalize().unwrap() == *b.path)
    };
    assert!(same_files(listed.samples(), folder.samples()), "relative to the list's directory");
    assert_eq!(listed.classes(), folder.classes());

    let by_number: String =
        folder.samples().iter().map(|s| format!("{},{}\n", relative(s), s.label.unwrap())).collect();
    let numbers = lists.join("numbers.csv");
    std::fs::write(&numbers, format!("{by_number}gone.jpg,3\n")).unwrap();
    let listed = ImageFolder::from_list(&numbers).unwrap();
    assert!(same_files(&listed.samples()[..COUNT as usize], folder.samples()));
    assert!(listed.classes().is_empty(), "numbers name no classes");
    let opts = LoaderOptions { width: 8, height: 8, max_failures: Some(1), ..LoaderOptions::default() };
    let Some(mut pipe) = start(loader(listed, &opts), Placement::sharded()) else { return };
    let labels: Vec<(u64, u32)> =
        pipe.iter().map(|img: Image<u8>| (img.sample.index, img.sample.label.unwrap())).collect();
    assert_eq!(labels.len() as u64, COUNT);
    assert!(labels.iter().all(|&(i, l)| folder.samples()[i as usize].label == Some(l)));
    let r = pipe.finish().unwrap();
    assert_balanced(&r);
    let read = r.stages.iter().find(|s| s.name == "read").unwrap();
    assert_eq!(read.stats.failures, 1);
    assert!(read.failure_samples[0].contains("gone.jpg"), "{:?}", read.failure_samples);
    std::fs::remove_dir_all(&lists).unwrap();
}

/// Every placement: ordered batches come out in the epoch's order, with the right shape, labels
/// and pixels, for two shuffled epochs that differ.
#[test]
fn ordered_batches_have_the_epoch_order_shape_and_pixels_in_every_placement() {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(5);
    let (w, h, b) = (32, 24, 10);
    let want: Vec<Vec<Sample>> = (0..2).map(|e| folder.epoch(e)).collect();
    assert_ne!(want[0], want[1], "epochs are shuffled differently");
    let pixels: std::collections::HashMap<u64, Vec<u8>> =
        folder.samples().iter().map(|s| (s.index, expected(&s.path, w, h))).collect();
    for p in PLACEMENTS {
        let opts = LoaderOptions { width: w, height: h, epochs: Some(2), ordered: true, ..LoaderOptions::default() };
        let Some(mut pipe) = start(batches(loader(folder.clone(), &opts), b, false), p) else { return };
        for want in &want {
            let got: Vec<ImageBatch<u8>> = pipe.epoch().collect();
            let sizes: Vec<usize> = got.iter().map(ImageBatch::len).collect();
            assert_eq!(sizes, [10, 10, 10, 10, 8], "{p:?}: one short batch per epoch");
            let order: Vec<&Sample> = got.iter().flat_map(|b| &b.samples).collect();
            assert_eq!(order, want.iter().collect::<Vec<_>>(), "{p:?}: the epoch's order");
            for batch in &got {
                assert_eq!(&batch.shape[1..], [h as usize, w as usize, 3]);
                assert_eq!(batch.data.len(), batch.shape.iter().product::<usize>());
                assert_eq!(batch.labels().unwrap(), batch.samples.iter().map(|s| s.label.unwrap()).collect::<Vec<_>>());
                for (i, s) in batch.samples.iter().enumerate() {
                    assert!(batch.image(i) == pixels[&s.index].as_slice(), "{p:?}: pixels of {}", s.path.display());
                }
            }
        }
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!(r.account.delivered, 2 * COUNT);
    }
}

/// `normalized_batches` with `Layout::Chw`: every placement gives `[B, 3, H, W]` float batches
/// whose planes are each image's channels normalized, and `drop_last` leaves the short batch
/// over, counted.
#[test]
fn normalized_chw_batches_hold_each_images_normalized_planes_in_every_placement() {
    let folder = ImageFolder::open(dataset()).unwrap();
    let (w, h, b) = (16, 12, 10);
    let n = Normalize { mean: [0.5, 0.25, 0.0], std: [0.5, 0.25, 1.0] };
    let planes: std::collections::HashMap<u64, Vec<f32>> = folder
        .samples()
        .iter()
        .map(|s| {
            let hwc = expected(&s.path, w, h);
            let plane =
                |c: usize| hwc.iter().skip(c).step_by(3).map(move |&x| (f32::from(x) / 255.0 - n.mean[c]) / n.std[c]);
            (s.index, (0..3).flat_map(plane).collect())
        })
        .collect();
    for p in PLACEMENTS {
        let opts = LoaderOptions { width: w, height: h, ..LoaderOptions::default() };
        let chain = normalized_batches(loader(folder.clone(), &opts), b, true, n, Layout::Chw);
        let Some(mut pipe) = start(chain, p) else { return };
        let got: Vec<ImageBatch<f32>> = pipe.iter().collect();
        assert_eq!(got.len(), 4, "{p:?}: 48 images make 4 whole batches; 8 are left over");
        for batch in &got {
            assert_eq!((batch.shape, batch.layout), ([10, 3, h as usize, w as usize], Layout::Chw));
            for (i, s) in batch.samples.iter().enumerate() {
                let want = &planes[&s.index];
                let worst = batch.image(i).iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-5, "{p:?}: {} differs by {worst}", s.path.display());
            }
        }
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!((r.account.delivered, r.account.left_over), (40, 8), "{p:?}");
    }
}

/// Training crops: every placement gives an image the same crop, flip and colour jitter (or
/// RandAugment, or AugMix) in a given epoch (whatever order the stages finish in), the crop
/// `Augment::apply` gives directly, and another one in the next epoch.
#[test]
fn augmented_images_are_the_same_in_every_placement_and_new_each_epoch() {
    let jitter = Augment::new(7).color_jitter(0.4, 0.4, 0.4, 0.1).unwrap();
    let randaugment = Augment::new(7).auto_augment(RandAugment::timm(7, "rand-m9-mstd0.5-inc1-p1").unwrap());
    let augmix = Augment::new(7).auto_augment(AugMix::timm(7, "augmix-m5-w3").unwrap());
    for augment in [jitter, randaugment, augmix] {
        check_augmented_images(augment);
    }
}

fn check_augmented_images(augment: Augment) {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(3);
    let (w, h) = (32, 32);
    let mut runs = Vec::new();
    for p in PLACEMENTS {
        let opts = LoaderOptions {
            width: w,
            height: h,
            epochs: Some(2),
            crop: Crop::Random(augment),
            ..LoaderOptions::default()
        };
        let Some(mut pipe) = start(loader(folder.clone(), &opts), p) else { return };
        let got: std::collections::BTreeMap<(u64, u64), Vec<u8>> =
            pipe.iter().map(|img: Image<u8>| ((img.sample.epoch, img.sample.index), img.data)).collect();
        assert_eq!(got.len() as u64, 2 * COUNT, "{p:?}: every image of both epochs, once");
        assert_balanced(&pipe.finish().unwrap());
        runs.push(got);
    }
    for (p, run) in PLACEMENTS.iter().zip(&runs).skip(1) {
        assert!(run == &runs[0], "{p:?} cropped differently from {:?}", PLACEMENTS[0]);
    }
    let first = &runs[0];
    for s in folder.samples().iter().take(4) {
        for epoch in 0..2 {
            let sample = Sample { epoch, ..s.clone() };
            let image = decode(Encoded { sample, bytes: std::fs::read(&s.path).unwrap() }).unwrap();
            let direct = augment.apply(image, w, h).unwrap();
            assert!(direct.data == first[&(epoch, s.index)], "{} in epoch {epoch}", s.path.display());
        }
    }
    let changed = (0..COUNT).filter(|&i| first[&(0, i)] != first[&(1, i)]).count() as u64;
    assert_eq!(changed, COUNT, "each epoch crops every image anew");
    let centered = folder.samples().iter().filter(|s| expected(&s.path, w, h) == first[&(0, s.index)]).count();
    assert!(centered <= 2, "{centered} of {COUNT} augmented images equal the center crop");
}

/// Multi-view loading (DINO's multi-crop shape: two large views and three small ones, one
/// small one centered): every placement gives each image the views `Views::apply` makes of it
/// directly, one batch per view with the same samples in the same order, and the account counts
/// images, not views.
#[test]
fn view_batches_hold_each_images_views_in_every_placement() {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(4);
    let global = Augment::new(3).scale(0.4, 1.0).unwrap();
    let local = Augment::new(3).scale(0.05, 0.4).unwrap();
    let views = Views::new([
        View::crop(32, 32, Crop::Random(global)),
        View::crop(32, 32, Crop::Random(global)),
        View::crop(16, 16, Crop::Random(local)),
        View::crop(16, 16, Crop::Random(local)),
        View::crop(16, 12, Crop::Center(0.875)),
    ])
    .unwrap();
    let want: std::collections::HashMap<(u64, u64), Vec<Image<u8>>> = (0..2)
        .flat_map(|epoch| folder.epoch(epoch))
        .map(|s| {
            let bytes = std::fs::read(&s.path).unwrap();
            ((s.epoch, s.index), views.apply(decode(Encoded { sample: s, bytes }).unwrap()).unwrap())
        })
        .collect();
    for p in PLACEMENTS {
        let opts = LoaderOptions { epochs: Some(2), ordered: true, ..LoaderOptions::default() };
        let chain = view_batches(loader_views(folder.clone(), &opts, views.clone()), 5, 10, false, Layout::Hwc);
        let Some(mut pipe) = start(chain, p) else { return };
        for epoch in 0..2 {
            let got: Vec<ViewBatch<u8>> = pipe.epoch().collect();
            let order: Vec<Sample> = got.iter().flat_map(|b| b.samples().to_vec()).collect();
            assert_eq!(order, folder.epoch(epoch), "{p:?}: epoch {epoch} in order");
            for batch in &got {
                let shapes: Vec<[usize; 4]> = batch.views.iter().map(|v| v.shape).collect();
                let b = batch.len();
                assert_eq!(shapes, [[b, 32, 32, 3], [b, 32, 32, 3], [b, 16, 16, 3], [b, 16, 16, 3], [b, 12, 16, 3]]);
                for (v, view) in batch.views.iter().enumerate() {
                    assert_eq!(view.samples, batch.samples(), "{p:?}: view {v} has the batch's samples");
                    for (i, s) in view.samples.iter().enumerate() {
                        let direct = &want[&(s.epoch, s.index)][v];
                        assert!(view.image(i) == direct.data.as_slice(), "{p:?}: view {v} of {}", s.path.display());
                    }
                }
            }
        }
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!(r.account.delivered, 2 * COUNT, "{p:?}: images delivered, each with its five views");
    }
    let distinct = want.values().filter(|v| v[0] != v[1] && v[2] != v[3]).count();
    assert!(distinct >= want.len() - 2, "two views of one setting differ: {distinct} of {}", want.len());
}

/// Each image of a loader run, by (epoch, index), in the order the training loop took them.
type Taken = Vec<((u64, u64), Vec<u8>)>;

/// Takes batches (recording each in `state`) until `stop` says so or the run ends.
fn take_batches(
    pipe: &mut shardpipe::pipeline::Pipeline<ImageBatch<u8>>,
    state: &mut LoaderState,
    mut stop: impl FnMut(&LoaderState) -> bool,
) -> Taken {
    let mut taken = Taken::new();
    while !stop(state) {
        let mut any = false;
        for batch in pipe.epoch() {
            any = true;
            taken.extend(batch.samples.iter().enumerate().map(|(i, s)| ((s.epoch, s.index), batch.image(i).to_vec())));
            state.record(&batch.samples).unwrap();
            if stop(state) {
                return taken;
            }
        }
        if !any {
            break;
        }
        state.finish_epoch();
    }
    taken
}

/// A training run stopped mid-epoch and resumed from its saved state takes every remaining
/// image exactly once, with the pixels (random crops included) of a run that never stopped; in
/// every placement, stopped in the first epoch unordered and in the second one ordered (where
/// the order is the uninterrupted one too).
#[test]
fn a_run_resumed_from_its_saved_state_takes_every_remaining_image_once_with_the_same_pixels() {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(13);
    let path = std::env::temp_dir().join(format!("shardpipe-test-resume-{}.state", std::process::id()));
    for (p, ordered, stop_epoch) in PLACEMENTS.iter().map(|&p| (p, false, 0)).chain([(PLACEMENTS[2], true, 1)]) {
        let opts = LoaderOptions {
            width: 16,
            height: 16,
            epochs: Some(2),
            ordered,
            crop: Crop::Random(Augment::new(5)),
            ..LoaderOptions::default()
        };
        let run = |folder: &ImageFolder| batches(loader(folder.clone(), &opts), 4, false);
        let Some(mut whole) = start(run(&folder), p) else { return };
        let want = take_batches(&mut whole, &mut LoaderState::new(&folder), |_| false);
        assert_eq!(want.len() as u64, 2 * COUNT);

        let Some(mut first) = start(run(&folder), p) else { return };
        let mut state = LoaderState::new(&folder);
        let before = take_batches(&mut first, &mut state, |s| s.epoch() == stop_epoch && s.consumed() >= 20);
        drop(first); // the process stops, with images still in flight
        state.save(&path).unwrap();

        let state = LoaderState::load(&path).unwrap();
        assert_eq!((state.epoch(), state.consumed()), (stop_epoch, 20), "{p:?}");
        let resumed = folder.clone().resume(&state).unwrap();
        let Some(mut second) = start(run(&resumed), p) else { return };
        let after = take_batches(&mut second, &mut state.clone(), |_| false);
        assert_balanced(&second.finish().unwrap());

        let mut got: Vec<_> = before.iter().chain(&after).cloned().collect();
        assert_eq!(got.len(), want.len(), "{p:?} ordered {ordered}: every image once, none twice");
        if ordered {
            assert!(got == want, "{p:?}: the uninterrupted order and pixels");
        }
        got.sort();
        let mut want = want;
        want.sort();
        assert!(got == want, "{p:?} ordered {ordered}: the same (epoch, image) pairs and pixels");
    }
    std::fs::remove_file(&path).unwrap();
}

/// Elastic training: a job of 2 ranks stops mid-epoch, their states are merged and 3 ranks go
/// on; together the two jobs take every image of both epochs once, with the pixels of a run on
/// one rank that never stopped, and the 3 ranks' shares of the rest are even.
#[test]
fn a_job_resumed_on_another_number_of_ranks_takes_every_remaining_image_once() {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(13);
    let p = Placement::Sharded { shards: 0 };
    let opts = LoaderOptions {
        width: 16,
        height: 16,
        epochs: Some(2),
        crop: Crop::Random(Augment::new(5)),
        ..LoaderOptions::default()
    };
    let run = |folder: &ImageFolder| batches(loader(folder.clone(), &opts), 4, false);
    let Some(mut whole) = start(run(&folder), p) else { return };
    let mut want = take_batches(&mut whole, &mut LoaderState::new(&folder), |_| false);
    let rank = |r, world| folder.clone().partition(r, world).unwrap();

    let mut got = Taken::new();
    let mut saved = Vec::new();
    for r in 0..2 {
        let Some(mut pipe) = start(run(&rank(r, 2)), p) else { return };
        let mut state = LoaderState::new(&rank(r, 2));
        got.extend(take_batches(&mut pipe, &mut state, |s| s.consumed() >= 8));
        saved.push(LoaderState::from_bytes(&state.to_bytes()).unwrap());
    }
    let merged = LoaderState::merge(&saved).unwrap();
    assert_eq!((merged.epoch(), merged.consumed(), merged.rank()), (0, 16, None));
    let mut rest_shares = Vec::new();
    for r in 0..3 {
        let mut state = merged.repartition(&rank(r, 3)).unwrap();
        let resumed = rank(r, 3).resume(&state).unwrap();
        let Some(mut pipe) = start(run(&resumed), p) else { return };
        let taken = take_batches(&mut pipe, &mut state, |_| false);
        assert_balanced(&pipe.finish().unwrap());
        rest_shares.push(taken.iter().filter(|((epoch, _), _)| *epoch == 0).count());
        got.extend(taken);
    }
    assert_eq!(rest_shares.iter().sum::<usize>() as u64, COUNT - 16);
    assert!(rest_shares.iter().all(|&n| n.abs_diff(rest_shares[0]) <= 1), "shares {rest_shares:?}");
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "every image of both epochs once");
    assert!(got == want, "the same (epoch, image) pairs and pixels as an uninterrupted run");
}

/// `erase` and `mixup` stages erase and mix each batch as `Erasing::apply` and `Mixup::apply` do
/// on their own, in every placement (ordered, so the batches are the same), and each target
/// row is a distribution over the classes.
#[test]
fn erased_and_mixed_batches_are_the_batches_erased_and_mixed_alike_in_every_placement() {
    let folder = ImageFolder::open(dataset()).unwrap().shuffle(2);
    let classes = folder.classes().len() as u32;
    let mixup = Mixup::new(9, classes).unwrap();
    let erasing = Erasing::new(9).fill(Fill::PerPixel);
    let opts = LoaderOptions { width: 12, height: 10, ordered: true, ..LoaderOptions::default() };
    let run = || normalized_batches(loader(folder.clone(), &opts), 6, false, Normalize::IMAGENET, Layout::Chw);
    let Some(mut plain) = start(run(), Placement::SingleLoop { offload_threads: 2 }) else { return };
    let want: Vec<MixedBatch<f32>> = plain.iter().map(|b| mixup.apply(erasing.apply(b)).unwrap()).collect();
    assert_eq!(want.len() as u64, COUNT.div_ceil(6));
    assert!(
        want.iter().any(|m| matches!(m.mix, Mix::Cutmix { .. }))
            && want.iter().any(|m| matches!(m.mix, Mix::Mixup { .. }))
    );
    for p in PLACEMENTS {
        let Some(mut pipe) = start(mixed(erased(run(), erasing), mixup), p) else { return };
        let got: Vec<MixedBatch<f32>> = pipe.iter().collect();
        assert_balanced(&pipe.finish().unwrap());
        assert_eq!(got.len(), want.len(), "{p:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.batch == w.batch && g.targets == w.targets && g.mix == w.mix, "{p:?}");
            assert!(g.targets.chunks_exact(g.classes).all(|row| (row.iter().sum::<f32>() - 1.0).abs() < 1e-5));
        }
    }
}

/// Evaluation crops: `crop_fraction` reaches the `resize` stage; a value out of range fails
/// every image, naming it, and the account balances.
#[test]
fn a_crop_fraction_is_applied_by_the_loader_and_a_bad_one_names_itself() {
    let folder = ImageFolder::open(dataset()).unwrap();
    let opts = LoaderOptions { width: 24, height: 24, crop: Crop::Center(0.875), ..LoaderOptions::default() };
    let Some(mut pipe) = start(loader(folder.clone(), &opts), Placement::Sharded { shards: 0 }) else { return };
    let got: std::collections::HashMap<u64, Vec<u8>> =
        pipe.iter().map(|img: Image<u8>| (img.sample.index, img.data)).collect();
    assert_eq!(got.len() as u64, COUNT);
    for s in folder.samples().iter().take(4) {
        let image = decode(Encoded { sample: s.clone(), bytes: std::fs::read(&s.path).unwrap() }).unwrap();
        let want = resize_center(image, 24, 24, 0.875).unwrap().data;
        assert!(got[&s.index] == want, "{}", s.path.display());
        assert!(got[&s.index] != expected(&s.path, 24, 24), "0.875 differs from the full center crop");
    }
    let bad = LoaderOptions { crop: Crop::Center(1.5), max_failures: Some(4), ..opts };
    let Some(pipe) = start(loader(folder, &bad), Placement::Sharded { shards: 0 }) else { return };
    let failed = pipe.finish().unwrap_err();
    let msg = failed.error.to_string();
    assert!(msg.contains("resize") && msg.contains("crop fraction 1.5 is outside (0, 1]"), "{msg}");
    assert_balanced(&failed.report);
}

#[test]
fn rank_partitions_are_disjoint_and_cover_the_set_through_the_loader() {
    let mut seen = Vec::new();
    for rank in 0..3 {
        let folder = ImageFolder::open(dataset()).unwrap().shuffle(9).partition(rank, 3).unwrap();
        let opts = LoaderOptions { width: 16, height: 16, ..LoaderOptions::default() };
        let Some(mut pipe) = start(loader(folder.clone(), &opts), Placement::Sharded { shards: 0 }) else { return };
        let mut mine: Vec<u64> = pipe.iter().map(|img: Image<u8>| img.sample.index).collect();
        assert_eq!(mine.len(), folder.epoch_len());
        mine.sort_unstable();
        seen.extend(mine);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..COUNT).collect::<Vec<_>>());
}

/// A folder of good images plus one of each bad kind.
fn bad_folder() -> (PathBuf, Vec<(&'static str, &'static str)>) {
    let dir = std::env::temp_dir().join(format!("shardpipe-test-bad-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    synth::write_set(&dir, 12, 3, 0).unwrap();
    let good = std::fs::read(dir.join("img-000000.jpg")).unwrap();
    std::fs::write(dir.join("bad-truncated.jpg"), &good[..good.len() / 3]).unwrap();
    let mut corrupt = good.clone();
    corrupt[2..400].fill(0xa5);
    std::fs::write(dir.join("bad-corrupt.jpg"), corrupt).unwrap();
    std::fs::write(dir.join("bad-empty.jpg"), b"").unwrap();
    std::fs::write(dir.join("bad-text.jpg"), b"this is not an image\n").unwrap();
    let reasons = vec![
        ("bad-truncated.jpg", "corrupt or truncated JPEG"),
        ("bad-corrupt.jpg", "corrupt or truncated JPEG"),
        ("bad-empty.jpg", "the file is empty"),
        ("bad-text.jpg", "not a JPEG, PNG, WebP, GIF, BMP or TIFF file"),
    ];
    (dir, reasons)
}

#[test]
fn bad_files_are_counted_failures_naming_path_and_reason_and_the_account_balances() {
    let (dir, reasons) = bad_folder();
    let mut list: Vec<(PathBuf, Option<u32>)> =
        ImageFolder::open(&dir).unwrap().samples().iter().map(|s| (s.path.to_path_buf(), None)).collect();
    // Vanished between listing and reading, and a directory where a file was expected.
    list.push((dir.join("vanished.jpg"), None));
    list.push((dir.clone(), None));
    // Unreadable even for root: reading address 0 of our own memory is an I/O error.
    list.push((PathBuf::from("/proc/self/mem"), None));
    let folder = ImageFolder::from_files(list).unwrap();
    for p in PLACEMENTS {
        let opts = LoaderOptions { width: 16, height: 16, max_failures: Some(10), ..LoaderOptions::default() };
        let Some(mut pipe) = start(batches(loader(folder.clone(), &opts), 4, false), p) else { return };
        let delivered: usize = pipe.iter().map(|b| b.len()).sum();
        let r = pipe.finish().unwrap();
        assert_balanced(&r);
        assert_eq!(delivered, 12, "{p:?}: every good image arrives");
        assert_eq!(r.account.failed, 7, "{p:?}:\n{r}");
        let stage = |n: &str| r.stages.iter().find(|s| s.name == n).unwrap();
        let (read, decoded) = (stage("read"), stage("decode"));
        assert_eq!(
            (read.stats.failures, decoded.stats.failures),
            (4, 3),
            "{p:?}: read fails the missing, the directory, the unreadable and the empty file"
        );
        let all: Vec<&String> = read.failure_samples.iter().chain(&decoded.failure_samples).collect();
        for (file, reason) in &reasons {
            let path = dir.join(file).display().to_string();
            assert!(all.iter().any(|m| m.starts_with(&path) && m.contains(reason)), "{p:?}: {file}: {all:?}");
        }
        let vanished = dir.join("vanished.jpg").display().to_string();
        assert!(all.iter().any(|m| m.starts_with(&vanished) && m.contains("No such file")), "{all:?}");
        let is_dir = format!("{}: cannot read it", dir.display());
        assert!(all.iter().any(|m| m.starts_with(&is_dir) && m.contains("directory")), "{all:?}");
        assert!(all.iter().any(|m| m.starts_with("/proc/self/mem: cannot read it")), "{all:?}");
    }
}

#[test]
fn too_many_bad_files_fail_the_run_with_one_error_naming_the_stage() {
    let (dir, _) = bad_folder();
    let folder = ImageFolder::open(&dir).unwrap();
    let opts = LoaderOptions { width: 16, height: 16, max_failures: Some(2), ..LoaderOptions::default() };
    let Some(pipe) = start(loader(folder, &opts), Placement::Sharded { shards: 0 }) else { return };
    let failed = pipe.finish().unwrap_err();
    let msg = failed.error.to_string();
    assert!(msg.contains("decode") && msg.contains("limit 2"), "{msg}");
    assert_balanced(&failed.report);
}

#[test]
fn an_unreadable_file_is_a_counted_failure() {
    if is_root() {
        eprintln!("SKIPPED: running as root, which reads a file whatever its mode");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("shardpipe-test-unreadable-{}", std::process::id()));
    synth::write_set(&dir, 2, 1, 0).unwrap();
    let locked = dir.join("img-000001.jpg");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let folder = ImageFolder::open(&dir).unwrap();
    let opts = LoaderOptions { width: 8, height: 8, ..LoaderOptions::default() };
    let Some(pipe) = start(loader(folder, &opts), Placement::Sharded { shards: 1 }) else { return };
    let r = pipe.finish().unwrap();
    assert_eq!((r.account.delivered, r.account.failed), (1, 1));
    let read = r.stages.iter().find(|s| s.name == "read").unwrap();
    assert!(read.failure_samples[0].contains("ermission denied"), "{:?}", read.failure_samples);
}

/// Root reads a file whatever its mode.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn an_enormous_file_is_refused_before_it_is_read() {
    let dir = std::env::temp_dir().join(format!("shardpipe-test-enormous-{}", std::process::id()));
    synth::write_set(&dir, 3, 2, 0).unwrap();
    let huge = dir.join("huge.jpg");
    // Sparse: 8 GiB of size, no disk.
    std::fs::File::create(&huge).unwrap().set_len(8 << 30).unwrap();
    let folder = ImageFolder::open(&dir).unwrap();
    let opts = LoaderOptions { width: 8, height: 8, max_file_bytes: 64 << 20, ..LoaderOptions::default() };
    let Some(mut pipe) = start(loader(folder, &opts), Placement::Sharded { shards: 0 }) else { return };
    assert_eq!(pipe.iter().count(), 3);
    let r = pipe.finish().unwrap();
    assert_balanced(&r);
    assert_eq!((r.account.delivered, r.account.failed), (3, 1));
    let read = r.stages.iter().find(|s| s.name == "read").unwrap();
    let want = format!("{}: 8589934592 bytes is more than the 67108864-byte limit", huge.display());
    assert!(read.failure_samples[0].starts_with(&want), "{:?}", read.failure_samples);
    let _ = std::fs::remove_dir_all(&dir);
}
