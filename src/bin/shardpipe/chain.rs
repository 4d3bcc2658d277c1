//! Checking a plan as a chain: which kind of item each stage gets and gives, and the op
//! parameters serde cannot check. A `route` stage checks each of its paths from the kind it
//! gets; every path must give the same kind.

use std::path::Path;

use crate::plan::{Op, Plan, Source, Stage, op_name};

/// What each op accepts and gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Int,
    Path,
    Bytes,
    Sum,
    Batch(Box<Kind>),
    /// Image files (path and label) from an `images` source.
    Sample,
    /// An image file's contents, with its path and label.
    Encoded,
    /// Decoded RGB pixels.
    Image,
    /// Normalized f32 pixels.
    Floats,
    /// Collated `[B, H, W, C]` (or `[B, C, H, W]`) batches of `Image`s or of `Floats`.
    ImageBatch,
    FloatBatch,
    /// Several views of each decoded image (`views`): this many.
    Views(usize),
    /// Collated batches of views: one buffer per view, of pixels or normalized.
    ViewBatch,
    FloatViewBatch,
    /// Mixed batches with their soft targets (`mixup`): of image batches, of pixels or
    /// normalized, or of batches of views.
    Mixed(Box<Kind>),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Int => "integers".into(),
            Kind::Path => "file paths".into(),
            Kind::Bytes => "file contents".into(),
            Kind::Sum => "checksums".into(),
            Kind::Batch(k) => format!("batches of {}", k.describe()),
            Kind::Sample => "image files".into(),
            Kind::Encoded => "image file contents".into(),
            Kind::Image => "decoded images".into(),
            Kind::Floats => "normalized images".into(),
            Kind::ImageBatch | Kind::FloatBatch => "image batches".into(),
            Kind::Views(_) => "views of images".into(),
            Kind::ViewBatch | Kind::FloatViewBatch => "batches of views".into(),
            Kind::Mixed(k) => format!("mixed {}", k.describe()),
        }
    }
}

/// Checks the things serde cannot: one source kind, op parameters, and that each op gets the
/// kind of item it works on.
pub fn check(plan: &Plan) -> Result<(), String> {
    chain(plan).map(|_| ())
}

/// The kind of item entering each stage, and (last) what reaches the consumer; the error says
/// which stage cannot take what it gets.
pub fn chain(plan: &Plan) -> Result<Vec<Kind>, String> {
    let s = &plan.source;
    let kind = match (s.count.is_some(), s.dir.is_some(), s.glob.is_some(), s.images.is_some()) {
        (true, false, false, false) => Kind::Int,
        (false, true, false, false) | (false, false, true, false) => Kind::Path,
        (false, false, false, true) => Kind::Sample,
        (false, false, false, false) => {
            return Err("[source] needs `count = N` (integers), `dir = \"path\"` or `glob = \"path/*.ext\"` (files), or `images = \"path\"` (an image folder)".into());
        }
        _ => return Err("[source] has more than one of `count`, `dir`, `glob` and `images`; keep one".into()),
    };
    if let Some(g) = &s.glob
        && Path::new(g).parent().is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
    {
        return Err(format!("[source] glob = \"{g}\": `*` and `?` work in the file name only, not in directories"));
    }
    check_source_options(s)?;
    if s.epochs == 0 {
        return Err("[source] epochs must be at least 1".into());
    }
    if s.rate < 0.0 || !s.rate.is_finite() {
        return Err(format!(
            "[source] rate must be a positive number of items per second (or 0 for closed loop), got {}",
            s.rate
        ));
    }
    stage_kinds(&plan.stages, kind, "", false)
}

/// The kind of item entering each of `stages` given `kind` into the first, and (last) what
/// leaves the last. `within` names the route path they are in (for messages; "" at the top).
pub fn stage_kinds(stages: &[Stage], mut kind: Kind, within: &str, in_path: bool) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::with_capacity(stages.len() + 1);
    for (i, st) in stages.iter().enumerate() {
        kinds.push(kind.clone());
        let at = format!("{within}stage {} (op = \"{}\")", i + 1, op_name(st.op));
        let need = |what: &str| format!("{at}: needs `{what}`");
        let expects = |what: &str, kind: &Kind| format!("{at}: expects {what}, but gets {}", kind.describe());
        kind = match (st.op, kind) {
            (Op::Noop, k) => k,
            (Op::Spin | Op::Sleep, k) => {
                st.us.ok_or_else(|| need("us = microseconds per item"))?;
                k
            }
            (Op::Read, Kind::Path) => Kind::Bytes,
            (Op::Read, Kind::Sample) => Kind::Encoded,
            (Op::Read, k) => {
                return Err(format!("{}; use a `dir` or `images` source", expects("file paths", &k)));
            }
            (Op::Checksum, Kind::Bytes | Kind::Int) => Kind::Sum,
            (Op::Checksum, k) => return Err(expects("file contents or integers", &k)),
            (Op::Batch, k) => {
                if matches!(st.size, Some(0) | None) {
                    return Err(need("size = items per batch (1 or more)"));
                }
                let normalizing = st.mean.is_some() || st.std.is_some();
                match k {
                    Kind::Image if normalizing => Kind::FloatBatch,
                    Kind::Views(_) if normalizing => Kind::FloatViewBatch,
                    Kind::Floats if normalizing => {
                        return Err(format!(
                            "{at}: `mean/std` normalize while collating, but these images are normalized already; drop them here or drop the `normalize` stage (one pass is cheaper)"
                        ));
                    }
                    k if normalizing => {
                        return Err(format!(
                            "{at}: `mean/std` normalize decoded images while collating, but this batch gets {}; drop them",
                            k.describe()
                        ));
                    }
                    Kind::Image => Kind::ImageBatch,
                    Kind::Views(_) => Kind::ViewBatch,
                    Kind::Floats => Kind::FloatBatch,
                    k if st.layout.is_some() => {
                        return Err(format!(
                            "{at}: `layout` orders the pixels of image batches, but this batch gets {}; drop it",
                            k.describe()
                        ));
                    }
                    k => Kind::Batch(Box::new(k)),
                }
            }
            (Op::Unbatch, Kind::Batch(inner)) => *inner,
            (Op::Unbatch, k) => return Err(expects("batches of `batch` (image batches stay whole)", &k)),
            (Op::Decode, Kind::Encoded) => Kind::Image,
            (Op::Decode, k) => {
                return Err(format!("{}; read them from an `images` source", expects("image file contents", &k)));
            }
            (Op::Resize, Kind::Image) => {
                match (st.width, st.height) {
                    (Some(w), Some(h)) if w > 0 && h > 0 => {}
                    _ => return Err(need("width = W and height = H (pixels, 1 or more)")),
                }
                Kind::Image
            }
            (Op::Resize, k) => return Err(expects("decoded images", &k)),
            (Op::Views, Kind::Image) => {
                let specs = st.views.as_deref().ok_or_else(|| {
                    need("views = [{ width = 224, height = 224, copies = 2, augment = { seed = 7 } }] (the views of each image)")
                })?;
                Kind::Views(crate::view_spec::build(specs).map_err(|e| format!("{at}: {e}"))?.count())
            }
            (Op::Views, k) => return Err(expects("decoded images", &k)),
            (Op::Normalize, Kind::Image) => Kind::Floats,
            (Op::Normalize, k) => return Err(expects("decoded images", &k)),
            (Op::Mixup, k @ (Kind::ImageBatch | Kind::FloatBatch | Kind::ViewBatch | Kind::FloatViewBatch)) => {
                let spec =
                    st.mixup.as_ref().ok_or_else(|| need("mixup = { seed = 5 } (timm's Mixup/CutMix settings)"))?;
                // The folder's classes are known only when it is opened: any count checks the rest.
                spec.build(1).map_err(|e| format!("{at}: {e}"))?;
                Kind::Mixed(Box::new(k))
            }
            (Op::Mixup, k) => {
                return Err(format!(
                    "{}; put a `batch` stage before it (Mixup pairs the images of a batch)",
                    expects("image batches", &k)
                ));
            }
            (Op::Erase, k) => erase_kind(st, k, &at)?,
            (Op::Route, k) => route_kind(st, k, &at)?,
        };
        if in_path && st.shards.is_some() {
            return Err(format!(
                "{at}: `shards` cannot be set inside a route's path (paths run on their route's shards); set it on the route"
            ));
        }
        if st.concurrency.is_some_and(|c| c.on(1) == 0) {
            return Err(format!("{at}: concurrency must be at least 1"));
        }
        if st.buffer == Some(0) {
            return Err(format!("{at}: buffer must be at least 1"));
        }
        // Sizes that would allocate absurd amounts up front are refused here, with the key.
        let limits = [
            ("size", st.size.map(|v| v as u64), MAX_COUNT),
            ("buffer", st.buffer.map(|v| v as u64), MAX_COUNT),
            ("concurrency", st.concurrency.map(|c| c.here()), MAX_COUNT),
            ("us", st.us, 3_600_000_000),
            ("width", st.width.map(u64::from), u64::from(MAX_SIDE)),
            ("height", st.height.map(u64::from), u64::from(MAX_SIDE)),
        ];
        for (key, value, max) in limits {
            if let Some(v) = value.filter(|&v| v > max) {
                return Err(format!("{at}: {key} = {v} is more than the {max} this command accepts"));
            }
        }
        if let Some(a) = &st.augment {
            a.build().map_err(|e| format!("{at}: {e}"))?;
        }
        if let Some(f) = st.crop_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(format!(
                    "{at}: crop_fraction = {f} is outside (0, 1] (0.875 is torchvision's Resize(256) + CenterCrop(224))"
                ));
            }
            if st.augment.is_some() {
                return Err(format!(
                    "{at}: `crop_fraction` is for center crops; an `augment` stage crops with its `scale` (drop one)"
                ));
            }
        }
        if st.resample.is_some() && st.augment.is_some() {
            return Err(format!(
                "{at}: `resample` here is the center crop's filter; an `augment` stage takes it inside: augment = {{ resample = \"bicubic\", … }}"
            ));
        }
        if st.std.is_some_and(|s| s.iter().any(|&x| !(x.is_finite() && x > 0.0))) {
            return Err(format!("{at}: every `std` value must be a positive number"));
        }
        if (st.mean.is_some() || st.std.is_some()) && !matches!(st.op, Op::Normalize | Op::Batch) {
            return Err(format!(
                "{at}: `mean/std` applies only to op = \"normalize\" (or a \"batch\" of images, to normalize while collating)"
            ));
        }
        let stray = [
            (st.drop_last || st.layout.is_some(), Op::Batch, "drop_last/layout"),
            (st.width.is_some() || st.height.is_some(), Op::Resize, "width/height"),
            (st.augment.is_some(), Op::Resize, "augment"),
            (st.crop_fraction.is_some(), Op::Resize, "crop_fraction"),
            (st.resample.is_some(), Op::Resize, "resample"),
            (st.views.is_some(), Op::Views, "views"),
            (st.mixup.is_some(), Op::Mixup, "mixup"),
            (st.erase.is_some(), Op::Erase, "erase"),
            (st.paths.is_some() || st.weights.is_some() || st.batched, Op::Route, "paths/weights/batched"),
        ];
        for (given, op, key) in stray {
            if given && st.op != op {
                return Err(format!("{at}: `{key}` applies only to op = \"{}\"", op_name(op)));
            }
        }
    }
    kinds.push(kind);
    Ok(kinds)
}

/// What an `erase` stage gives: what it gets, normalized image batches (mixed or not) or
/// batches of views, with boxes erased; `from` only on views.
fn erase_kind(st: &Stage, kind: Kind, at: &str) -> Result<Kind, String> {
    let spec = st.erase.as_ref().ok_or_else(|| {
        format!("{at}: needs `erase = {{ seed = 3, prob = 0.25, mode = \"pixel\" }}` (timm's random-erasing settings)")
    })?;
    spec.build().map_err(|e| format!("{at}: {e}"))?;
    let inner = if let Kind::Mixed(k) = &kind { k.as_ref() } else { &kind };
    match inner {
        Kind::FloatViewBatch => {}
        Kind::FloatBatch if spec.from.is_some() => {
            return Err(format!(
                "{at}: `from` picks the first view to erase, but this stage gets image batches; drop it"
            ));
        }
        Kind::FloatBatch => {}
        Kind::ImageBatch | Kind::ViewBatch => {
            return Err(format!(
                "{at}: erases normalized batches (timm erases after normalizing, where 0 is the mean colour), but gets {} of pixels; give the `batch` stage `mean` and `std`",
                kind.describe()
            ));
        }
        _ => {
            return Err(format!(
                "{at}: expects normalized image batches, but gets {}; put a `batch` stage with `mean` and `std` before it",
                kind.describe()
            ));
        }
    }
    Ok(kind)
}

/// What a `route` stage gives: the kind every one of its paths gives from `kind`. A batched
/// route gets batches and hands each path batches of the same kind (sub-batches).
fn route_kind(st: &Stage, kind: Kind, at: &str) -> Result<Kind, String> {
    if st.batched && !matches!(kind, Kind::Batch(_)) {
        return Err(format!(
            "{at}: batched = true routes the items inside batches, but gets {}; put a `batch` stage before it (image batches are collated into one buffer and are not split)",
            kind.describe()
        ));
    }
    let paths = st.paths.as_ref().filter(|p| !p.is_empty()).ok_or_else(|| {
        format!(
            "{at}: needs `paths = [[{{ op = \"noop\" }}], [{{ op = \"spin\", us = 20 }}]]` (a list of stages per path)"
        )
    })?;
    if let Some(w) = &st.weights
        && (w.len() != paths.len() || w.iter().all(|&x| x == 0))
    {
        return Err(format!(
            "{at}: `weights` needs one number per path ({} here), not all 0; got {} number(s)",
            paths.len(),
            w.len()
        ));
    }
    let mut gives: Option<Kind> = None;
    for (j, stages) in paths.iter().enumerate() {
        let kinds = stage_kinds(stages, kind.clone(), &format!("{at}, path {j}: "), true)?;
        let last = kinds.last().cloned().unwrap_or_else(|| kind.clone());
        match &gives {
            None => gives = Some(last),
            Some(first) if *first != last => {
                return Err(format!(
                    "{at}: path {j} gives {}, but path 0 gives {}; every path must give the same kind",
                    last.describe(),
                    first.describe()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(gives.unwrap_or(kind))
}

/// The most items a batch, a queue or a stage's concurrency may hold in a plan.
const MAX_COUNT: u64 = 1 << 20;

/// The widest or tallest image a `resize` stage or a view may make, in pixels.
pub const MAX_SIDE: u32 = 16_384;

/// The source keys that only some source kinds take.
fn check_source_options(s: &Source) -> Result<(), String> {
    let images = s.images.is_some();
    if let Some(g) = &s.generate {
        match (s.dir.is_some(), images, g.file_kib) {
            (true, _, None) => {
                return Err("[source] generate with `dir` needs `file_kib` (the size of each file)".into());
            }
            (true, _, Some(_)) if g.seed.is_some() || g.classes.is_some() || g.format.is_some() => {
                return Err(
                    "[source] generate with `dir` makes random files: `seed`, `classes` and `format` apply to `images`"
                        .into(),
                );
            }
            (_, true, Some(_)) => {
                return Err("[source] generate with `images` makes images of their own size: drop `file_kib`".into());
            }
            (false, false, _) => {
                return Err("[source] `generate` needs `dir` or `images` (where to make the files)".into());
            }
            _ => {}
        }
    }
    if !images && (s.shuffle.is_some() || s.rank.is_some() || s.world_size.is_some() || s.drop_last) {
        return Err("[source] `shuffle`, `rank`, `world_size` and `drop_last` apply to an `images` source".into());
    }
    if let Some(g) = &s.generate {
        if g.files == 0 {
            return Err(
                "[source] generate = { files = 0, .. }: nothing to make; give how many files, or drop `generate`"
                    .into(),
            );
        }
        if g.file_kib.is_some_and(|k| k > 1 << 20) || g.files > MAX_COUNT {
            return Err(format!(
                "[source] generate = {{ files = {}, .. }}: at most {MAX_COUNT} files of at most 1 GiB each",
                g.files
            ));
        }
    }
    let (rank, world) = (s.rank.unwrap_or(0), s.world_size.unwrap_or(1));
    if world == 0 || rank >= world {
        return Err(format!(
            "[source] rank = {rank}, world_size = {world}: need world_size >= 1 and rank < world_size"
        ));
    }
    Ok(())
}
