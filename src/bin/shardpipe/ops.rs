//! The op catalog: turns a checked [`Plan`] into a pipeline of [`Value`]s on a placement.
//!
//! Every op takes and gives a `Value`, so the chain is built in a loop; the plan check has
//! already made sure each op gets the kind of value it works on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpipe::images::{
    self, BatchCollector, BatchPool, Encoded, Image, ImageBatch, ImageFolder, MixedBatch, MixedViews, Normalize,
    POOLED_BATCHES, Sample, ViewBatch, ViewsCollector,
};
use shardpipe::pipeline::{PipelineBuilder, Placement, path, source, source_epochs, source_indexed};

use crate::chain::stage_kinds;
use crate::plan::{Generate, Kind, Mode, Op, Plan, Stage};
use collect::ValueCollector;

mod collect;

/// What flows through a plan's pipeline.
#[derive(Debug, Clone)]
pub enum Value {
    Int(u64),
    Path(Arc<Path>),
    Bytes(Vec<u8>),
    Sum(u64),
    Batch(Vec<Value>),
    Sample(Sample),
    Encoded(Encoded),
    Image(Image<u8>),
    Floats(Image<f32>),
    Images(ImageBatch<u8>),
    FloatImages(ImageBatch<f32>),
    /// One image's views, in order.
    Views(Vec<Image<u8>>),
    ViewImages(ViewBatch<u8>),
    FloatViewImages(ViewBatch<f32>),
    /// Batches mixed by `mixup`, with their targets.
    Mixed(MixedBatch<u8>),
    FloatMixed(MixedBatch<f32>),
    MixedViews(MixedViews<u8>),
    FloatMixedViews(MixedViews<f32>),
}

impl Value {
    /// Source items this value holds (a batch holds many).
    pub fn items(&self) -> u64 {
        match self {
            Value::Batch(b) => b.iter().map(Value::items).sum(),
            Value::Images(b) => b.len() as u64,
            Value::FloatImages(b) => b.len() as u64,
            Value::ViewImages(b) => b.len() as u64,
            Value::FloatViewImages(b) => b.len() as u64,
            Value::Mixed(b) => b.batch.len() as u64,
            Value::FloatMixed(b) => b.batch.len() as u64,
            Value::MixedViews(b) => b.len() as u64,
            Value::FloatMixedViews(b) => b.len() as u64,
            _ => 1,
        }
    }

    /// What the value is, for the messages of ops that got the wrong kind (which the plan
    /// check rules out).
    fn what(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Path(_) => "a path",
            Value::Bytes(_) => "file contents",
            Value::Sum(_) => "a checksum",
            Value::Batch(_) => "a batch",
            Value::Sample(_) => "an image file",
            Value::Encoded(_) => "image file contents",
            Value::Image(_) => "an image",
            Value::Floats(_) => "a normalized image",
            Value::Images(_) | Value::FloatImages(_) => "an image batch",
            Value::Views(_) => "an image's views",
            Value::ViewImages(_) | Value::FloatViewImages(_) => "a batch of views",
            Value::Mixed(_) | Value::FloatMixed(_) => "a mixed image batch",
            Value::MixedViews(_) | Value::FloatMixedViews(_) => "a mixed batch of views",
        }
    }
}

/// Burns `d` of CPU on the calling thread.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// FNV-1a over bytes, or a mix of an integer: cheap and order-sensitive.
fn checksum(v: &Value) -> u64 {
    match v {
        Value::Bytes(b) => {
            b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
        }
        Value::Int(x) => x.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        Value::Sum(s) => *s,
        _ => 0,
    }
}

/// The placement a plan's mode asks for.
pub fn placement(plan: &Plan, mode: Mode) -> Placement {
    match mode {
        Mode::Single => Placement::SingleLoop { offload_threads: plan.placement.offload_threads },
        Mode::Sharded => Placement::Sharded { shards: plan.placement.shards },
    }
}

/// `{tmp}/x` is `x` under the system's temporary directory.
pub fn resolve_dir(dir: &Path) -> PathBuf {
    match dir.to_str().and_then(|s| s.strip_prefix("{tmp}/")) {
        Some(rest) => std::env::temp_dir().join(rest),
        None => dir.to_path_buf(),
    }
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one character).
fn matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..])),
        (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The files a `glob` source names, sorted.
fn glob_files(glob: &str) -> Result<Vec<Arc<Path>>, String> {
    let full = resolve_dir(Path::new(glob));
    let dir = full.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let pattern: Vec<char> = full.file_name().map(|n| n.to_string_lossy().chars().collect()).unwrap_or_default();
    let mut v: Vec<Arc<Path>> = std::fs::read_dir(dir)
        .map_err(|e| format!("[source] glob = \"{glob}\": {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().is_some_and(|n| matches(&pattern, &n.to_string_lossy().chars().collect::<Vec<_>>())))
        .map(Arc::from)
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(format!("[source] glob = \"{glob}\" matches no file"));
    }
    Ok(v)
}

/// The regular files in `dir` (made first when the plan says how and there are none), or those
/// `glob` matches; sorted.
pub fn files(plan: &Plan) -> Result<Vec<Arc<Path>>, String> {
    if let Some(glob) = &plan.source.glob {
        return glob_files(glob);
    }
    let dir = resolve_dir(plan.source.dir.as_deref().expect("checked: a dir source"));
    let list = |dir: &Path| -> Result<Vec<Arc<Path>>, String> {
        let mut v: Vec<Arc<Path>> = std::fs::read_dir(dir)
            .map_err(|e| format!("[source] dir {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .map(Arc::from)
            .collect();
        v.sort();
        Ok(v)
    };
    if let Some(g) = &plan.source.generate
        && (!dir.is_dir() || list(&dir)?.is_empty())
    {
        std::fs::create_dir_all(&dir).map_err(|e| format!("[source] cannot make {}: {e}", dir.display()))?;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..g.files {
            let data: Vec<u8> = (0..g.file_kib.expect("checked: dir files have a size") * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let path = dir.join(format!("file-{i:05}.bin"));
            std::fs::write(&path, data).map_err(|e| format!("[source] cannot write {}: {e}", path.display()))?;
        }
    }
    let files = list(&dir)?;
    if files.is_empty() {
        return Err(format!(
            "[source] dir {} has no files; add some or a `generate = {{ files, file_kib }}` line",
            dir.display()
        ));
    }
    Ok(files)
}

/// The image folder of an `images` source (generated first when the plan says how and it has
/// no images), with the plan's shuffle and partition; `limit` keeps its first N images.
pub fn image_folder(plan: &Plan, limit: Option<u64>) -> Result<ImageFolder, String> {
    let s = &plan.source;
    let dir = resolve_dir(s.images.as_deref().expect("checked: an images source"));
    let mut folder = if dir.is_file() { image_list(&dir)? } else { image_dir(&dir, s.generate.as_ref())? };
    if let Some(n) = limit.filter(|&n| n > 0) {
        folder = folder.take(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(seed) = s.shuffle {
        folder = folder.shuffle(seed);
    }
    let folder = folder.partition(s.rank.unwrap_or(0), s.world_size.unwrap_or(1)).map_err(|e| e.to_string())?;
    Ok(folder.drop_last(s.drop_last))
}

/// Extensions an `images` list file may have (anything else that is a file is a mistake).
const LIST_EXTENSIONS: [&str; 4] = ["txt", "csv", "tsv", "lst"];

/// The images a list file names. A plan's `generate` does not apply: it makes images only
/// where there are none, and a list names its images (as a directory with images does).
fn image_list(list: &Path) -> Result<ImageFolder, String> {
    let ext = list.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !LIST_EXTENSIONS.contains(&ext) {
        return Err(format!(
            "[source] images = {}: is a file but not a list (.txt, .csv, .tsv or .lst: one `path [label]` per line); name a directory of images or a list",
            list.display()
        ));
    }
    ImageFolder::from_list(list).map_err(|e| format!("[source] images: {e}"))
}

/// An image directory, made first when the plan says how and it has no images.
fn image_dir(dir: &Path, generate: Option<&Generate>) -> Result<ImageFolder, String> {
    if let Some(g) = generate
        && ImageFolder::open(dir).is_err()
    {
        let format = g.format.map_or(images::ImageFormat::Jpeg, |f| f.format());
        eprintln!("making {} {format} images in {} (once) ...", g.files, dir.display());
        images::synth::write_set_as(format, dir, g.files, g.seed.unwrap_or(1), g.classes.unwrap_or(10))
            .map_err(|e| format!("[source] generate: {e}"))?;
    }
    ImageFolder::open(dir).map_err(|e| format!("[source] images: {e}"))
}

/// The source of a plan: `items` overrides the count or keeps the first N files (0: endless,
/// for `--duration`).
fn plan_source(plan: &Plan, items: Option<u64>) -> Result<(PipelineBuilder<Value>, u32, String), String> {
    let endless = items == Some(0);
    let epochs = if endless { u64::MAX } else { plan.source.epochs };
    let (mut classes, mut origin) = (0, String::from("the source"));
    let builder = if plan.source.images.is_some() {
        let folder = Arc::new(image_folder(plan, items)?);
        (classes, origin) = (u32::try_from(folder.classes().len()).unwrap_or(u32::MAX), folder.origin().to_owned());
        // Few, slow items: a short ring lets the dealer give each to the shard with room.
        source_epochs(move |e| (e < epochs).then(|| folder.epoch(e).into_iter().map(Value::Sample))).buffer(8)
    } else if plan.source.dir.is_some() || plan.source.glob.is_some() {
        let files = files(plan)?;
        let limit = items.filter(|&n| n > 0).map_or(files.len(), |n| (n as usize).min(files.len()));
        let files: Arc<[Arc<Path>]> = files[..limit].into();
        source_epochs(move |e| (e < epochs).then(|| files.clone().to_vec().into_iter().map(Value::Path))).buffer(1024)
    } else {
        let count = items.or(plan.source.count).unwrap_or(0);
        let end = if count == 0 { u64::MAX } else { count };
        if epochs == 1 && plan.source.rate <= 0.0 {
            // Every shard makes its own numbers: no one shard deals every item (tiny tasks).
            return Ok((source_indexed(end, Value::Int), classes, origin));
        } else if epochs == 1 {
            source((0..end).map(Value::Int))
        } else {
            source_epochs(move |e| (e < epochs).then(|| (0..end).map(Value::Int)))
        }
        .buffer(1024)
    };
    let rate = plan.source.rate;
    Ok((if rate > 0.0 { builder.rate(rate) } else { builder }, classes, origin))
}

/// Builds the plan's pipeline (not started).
pub fn pipeline(plan: &Plan, items: Option<u64>) -> Result<PipelineBuilder<Value>, String> {
    let kinds = crate::plan::chain(plan).expect("checked when loaded");
    let (source, classes, origin) = plan_source(plan, items)?;
    mixup_classes(&plan.stages, classes, &origin)?;
    let b = add_stages(source, &plan.stages, &kinds, classes);
    Ok(b.sink(plan.sink.buffer))
}

/// Adds `stages` to `b`; `kinds[i]` is what enters stage `i` (the plan's check made them);
/// `classes` is the image folder's, for `mixup` targets.
fn add_stages(mut b: PipelineBuilder<Value>, stages: &[Stage], kinds: &[Kind], classes: u32) -> PipelineBuilder<Value> {
    for (i, st) in stages.iter().enumerate() {
        let us = Duration::from_micros(st.us.unwrap_or(0));
        b = match st.op {
            Op::Noop => b.pipe(Some),
            Op::Spin => b.pipe_blocking(move |v| {
                spin(us);
                Some(v)
            }),
            Op::Sleep => b.pipe_async(move |v| async move {
                shardpipe::time::sleep(us).await;
                Some(v)
            }),
            Op::Read => b.pipe_async(|v| async move {
                match v {
                    Value::Path(p) => shardpipe::io::read_limited(&*p, MAX_FILE_BYTES, Duration::from_secs(10))
                        .await
                        .map(Value::Bytes)
                        .map_err(|e| format!("{}: {e}", p.display())),
                    Value::Sample(s) => {
                        images::read(s, MAX_IMAGE_FILE_BYTES).await.map(Value::Encoded).map_err(|e| e.to_string())
                    }
                    other => Err(format!("read expects a file path, got {}", other.what())),
                }
            }),
            Op::Decode => b.pipe_blocking(|v| match v {
                Value::Encoded(e) => images::decode(e).map(Value::Image).map_err(|e| e.to_string()),
                other => Err(format!("decode expects image file contents, got {}", other.what())),
            }),
            Op::Resize => {
                let (w, h) = (st.width.expect("checked"), st.height.expect("checked"));
                let crop = match &st.augment {
                    Some(a) => images::Crop::Random(a.build().expect("checked")),
                    None => crate::augment_spec::center_crop(st.crop_fraction, st.resample),
                };
                b.pipe_blocking(move |v| match v {
                    Value::Image(img) => crop.apply(img, w, h).map(Value::Image).map_err(|e| e.to_string()),
                    other => Err(format!("resize expects an image, got {}", other.what())),
                })
            }
            Op::Views => {
                let views = crate::view_spec::build(st.views.as_deref().expect("checked")).expect("checked");
                b.pipe_blocking(move |v| match v {
                    Value::Image(img) => views.apply(img).map(Value::Views).map_err(|e| e.to_string()),
                    other => Err(format!("views expects an image, got {}", other.what())),
                })
            }
            Op::Normalize => {
                let n = normalize_of(st);
                b.pipe_blocking(move |v| match v {
                    Value::Image(img) => Ok(Value::Floats(images::normalize(img, &n))),
                    other => Err(format!("normalize expects an image, got {}", other.what())),
                })
            }
            Op::Mixup => {
                let mixup = st.mixup.as_ref().expect("checked").build(classes).expect("checked by mixup_classes");
                let failed = |e: images::MixupError| e.to_string();
                b.pipe_blocking(move |v| match v {
                    Value::Images(batch) => mixup.apply(batch).map(Value::Mixed).map_err(failed),
                    Value::FloatImages(batch) => mixup.apply(batch).map(Value::FloatMixed).map_err(failed),
                    Value::ViewImages(batch) => mixup.apply_views(batch).map(Value::MixedViews).map_err(failed),
                    Value::FloatViewImages(batch) => {
                        mixup.apply_views(batch).map(Value::FloatMixedViews).map_err(failed)
                    }
                    other => Err(format!("mixup expects an image batch, got {}", other.what())),
                })
            }
            Op::Erase => {
                let spec = st.erase.as_ref().expect("checked");
                let (erasing, from) = (spec.build().expect("checked"), spec.from.unwrap_or(0));
                b.pipe_blocking(move |v| match v {
                    Value::FloatImages(batch) => Ok(Value::FloatImages(erasing.apply(batch))),
                    Value::FloatViewImages(batch) => Ok(Value::FloatViewImages(erasing.apply_views(batch, from))),
                    Value::FloatMixed(mut mixed) => {
                        mixed.batch = erasing.apply(mixed.batch);
                        Ok(Value::FloatMixed(mixed))
                    }
                    Value::FloatMixedViews(mixed) => {
                        Ok(Value::FloatMixedViews(erase_mixed_views(&erasing, mixed, from)))
                    }
                    other => Err(format!("erase expects a normalized image batch, got {}", other.what())),
                })
            }
            Op::Checksum => b.pipe(|v| Some(Value::Sum(checksum(&v)))),
            Op::Batch => {
                let size = st.size.expect("checked: a size");
                let name = st.name.clone().unwrap_or_else(|| format!("batch{}", i + 1));
                let layout = st.layout.map_or(images::Layout::Hwc, images::Layout::from);
                let image = |v| if let Value::Image(i) = v { Some(i) } else { None };
                let floats = |v| if let Value::Floats(i) = v { Some(i) } else { None };
                let views = |v| if let Value::Views(i) = v { Some(i) } else { None };
                // Images and views go into their batch buffers as they arrive
                // (`ValueCollector`); other values are batched as they are.
                let batched = |agg| batch_options(agg, st, &name);
                match kinds[i] {
                    Kind::Image if st.mean.is_some() || st.std.is_some() => {
                        let (n, pool) = (normalize_of(st), BatchPool::new(POOLED_BATCHES));
                        batched(b.aggregate_into(size, move || {
                            let inner = BatchCollector::normalized(pool.clone(), size, &n, layout);
                            ValueCollector::new(inner, image, Value::FloatImages)
                        }))
                    }
                    Kind::Image => {
                        let pool = BatchPool::new(POOLED_BATCHES);
                        batched(b.aggregate_into(size, move || {
                            ValueCollector::new(BatchCollector::new(pool.clone(), size, layout), image, Value::Images)
                        }))
                    }
                    Kind::Floats => {
                        let pool = BatchPool::new(POOLED_BATCHES);
                        batched(b.aggregate_into(size, move || {
                            let inner = BatchCollector::new(pool.clone(), size, layout);
                            ValueCollector::new(inner, floats, Value::FloatImages)
                        }))
                    }
                    Kind::Views(count) if st.mean.is_some() || st.std.is_some() => {
                        let (n, pools) = (normalize_of(st), BatchPool::per_view(count, POOLED_BATCHES));
                        batched(b.aggregate_into(size, move || {
                            let inner = ViewsCollector::normalized(&pools, size, &n, layout);
                            ValueCollector::new(inner, views, Value::FloatViewImages)
                        }))
                    }
                    Kind::Views(count) => {
                        let pools = BatchPool::per_view(count, POOLED_BATCHES);
                        batched(b.aggregate_into(size, move || {
                            ValueCollector::new(ViewsCollector::new(&pools, size, layout), views, Value::ViewImages)
                        }))
                    }
                    _ => batch_options(b.aggregate(size), st, &name).map(Value::Batch).name(format!("{name}.wrap")),
                }
            }
            Op::Unbatch => b.pipe_iter(|v| match v {
                Value::Batch(items) => items,
                other => vec![other],
            }),
            Op::Route => {
                let paths = st.paths.clone().expect("checked: paths");
                let weights = st.weights.clone().unwrap_or_else(|| vec![1; paths.len()]);
                let router = weighted_router(weights);
                let chains = paths.into_iter().map(|stages| {
                    let kinds = stage_kinds(&stages, kinds[i].clone(), "", true).expect("checked when loaded");
                    move |p| add_stages(p, &stages, &kinds, classes)
                });
                if st.batched {
                    // The route splits `Vec`s: unwrap each batch for it, wrap each sub-batch again.
                    let name = st.name.clone().unwrap_or_else(|| format!("route{}", i + 1));
                    let paths: Vec<_> =
                        chains.map(|chain| path(move |p| chain(p.map(Value::Batch).name("wrap")))).collect();
                    b.map(|v| match v {
                        Value::Batch(items) => items,
                        other => vec![other],
                    })
                    .name(format!("{name}.unwrap"))
                    .path_variants_batched(move |items: &[Value]| items.iter().map(&router).collect(), paths)
                } else {
                    b.path_variants(router, chains.map(path).collect::<Vec<_>>())
                }
            }
        };
        if st.op != Op::Batch {
            let name = st.name.clone().unwrap_or_else(|| format!("{}{}", crate::plan::op_name(st.op), i + 1));
            b = options(b, st, &name);
        }
    }
    b
}

/// Erases views `from..` of a mixed batch of views as `Erasing::apply_views` would, its targets
/// kept.
fn erase_mixed_views(erasing: &images::Erasing, mixed: MixedViews<f32>, from: usize) -> MixedViews<f32> {
    let erase = |(v, mut m): (usize, MixedBatch<f32>)| {
        if v >= from {
            m.batch = erasing.apply_view(m.batch, v);
        }
        m
    };
    MixedViews { views: mixed.views.into_iter().enumerate().map(erase).collect() }
}

/// Checks that every `mixup` stage (in routes too) has classes to make targets for: its own
/// `classes`, or the image folder's (`classes`; 0 when it has none).
fn mixup_classes(stages: &[Stage], classes: u32, origin: &str) -> Result<(), String> {
    for (i, st) in stages.iter().enumerate() {
        if let Some(spec) = &st.mixup
            && spec.classes.is_none()
            && classes == 0
        {
            return Err(format!(
                "stage {} (op = \"mixup\"): {origin} has no classes to make targets for; load images from class sub-directories or a list with labels, or set mixup = {{ classes = N, … }}",
                i + 1
            ));
        }
        for path in st.paths.iter().flatten() {
            mixup_classes(path, classes, origin)?;
        }
    }
    Ok(())
}

/// Sends each item down a path chosen by a hash of the item, in proportion to `weights` (the
/// same item always takes the same path, on every shard and in every mode).
fn weighted_router(weights: Vec<u32>) -> impl Fn(&Value) -> usize + Send + Sync + 'static {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    move |v| {
        let mut x = route_key(v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) % total.max(1);
        for (k, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return k;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }
}

/// What a route hashes: the integer, the file's path (for every image value, decoded or not:
/// it keeps its sample), a cheap digest of bytes, or the keys of a batch's items combined, so
/// decoded images and batches spread over the paths by weight like integers do.
fn route_key(v: &Value) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x100_0000_01b3;
    let fnv = |bytes: &[u8]| bytes.iter().fold(FNV_OFFSET, |h, &x| (h ^ u64::from(x)).wrapping_mul(FNV_PRIME));
    let of_path = |p: &Path| fnv(p.as_os_str().as_encoded_bytes());
    let combine = |keys: &mut dyn Iterator<Item = u64>| keys.fold(FNV_OFFSET, |h, k| (h ^ k).wrapping_mul(FNV_PRIME));
    let of_samples = |samples: &[Sample]| combine(&mut samples.iter().map(|s| of_path(&s.path)));
    match v {
        Value::Int(x) | Value::Sum(x) => *x,
        Value::Path(p) => of_path(p),
        Value::Sample(s) => of_path(&s.path),
        Value::Encoded(e) => of_path(&e.sample.path),
        Value::Image(i) => of_path(&i.sample.path),
        Value::Floats(i) => of_path(&i.sample.path),
        Value::Bytes(b) => fnv(&b[..b.len().min(64)]) ^ b.len() as u64,
        Value::Batch(items) => combine(&mut items.iter().map(route_key)),
        Value::Images(b) => of_samples(&b.samples),
        Value::FloatImages(b) => of_samples(&b.samples),
        Value::Views(v) => v.first().map_or(FNV_OFFSET, |i| of_path(&i.sample.path)),
        Value::ViewImages(b) => of_samples(b.samples()),
        Value::FloatViewImages(b) => of_samples(b.samples()),
        Value::Mixed(b) => of_samples(&b.batch.samples),
        Value::FloatMixed(b) => of_samples(&b.batch.samples),
        Value::MixedViews(b) => of_samples(b.samples()),
        Value::FloatMixedViews(b) => of_samples(b.samples()),
    }
}

/// Image files larger than this fail at `read` with a clear error instead of filling memory.
const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Other files larger than this fail at `read` the same way.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// A `normalize` or normalizing `batch` stage's mean and std (ImageNet's where left out).
fn normalize_of(st: &crate::plan::Stage) -> Normalize {
    let d = Normalize::IMAGENET;
    Normalize { mean: st.mean.unwrap_or(d.mean), std: st.std.unwrap_or(d.std) }
}

/// A `batch` stage's options from the plan: `drop_last`, then those of every stage.
fn batch_options<T: Send + 'static>(agg: PipelineBuilder<T>, st: &Stage, name: &str) -> PipelineBuilder<T> {
    let agg = if st.drop_last { agg.drop_last() } else { agg };
    options(agg, st, name)
}

/// A stage's options from the plan.
fn options<T: Send + 'static>(mut b: PipelineBuilder<T>, st: &crate::plan::Stage, name: &str) -> PipelineBuilder<T> {
    b = b.name(name);
    if let Some(c) = st.concurrency {
        // Checked against the plan's limit on load, so it fits.
        b = b.concurrency(usize::try_from(c.here()).unwrap_or(usize::MAX));
    }
    if st.ordered {
        b = b.ordered();
    }
    if let Some(m) = st.max_failures {
        b = b.max_failures(m);
    }
    if let Some(r) = st.max_failure_rate {
        b = b.max_failure_rate(r);
    }
    if let Some(s) = &st.shards {
        b = b.on_shards(s.iter().copied());
    }
    if let Some(n) = st.buffer {
        b = b.buffer(n);
    }
    b
}

#[cfg(test)]
mod tests;
