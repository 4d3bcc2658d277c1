//! Shard plans: TOML descriptions of a pipeline (source, stages, placement) that the command runs.
//!
//! A plan is read as a TOML tree, `--set key.path=value` overrides are applied to the tree, and
//! only then is it checked against the schema (unknown keys refused), so an override is checked
//! exactly like the file. The schema is documented in docs/plans.md.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::augment_spec::{AugmentSpec, ResampleSpec};
use crate::chain::check;
pub use crate::chain::{Kind, chain};
pub use concurrency::Concurrency;

mod concurrency;

/// The plans shipped in `shards/`, embedded so the command works from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../../shards/default.toml")),
    ("cpu-bound", include_str!("../../../shards/cpu-bound.toml")),
    ("io-bound", include_str!("../../../shards/io-bound.toml")),
    ("tiny-tasks", include_str!("../../../shards/tiny-tasks.toml")),
    ("tail-latency", include_str!("../../../shards/tail-latency.toml")),
    ("imagenet", include_str!("../../../shards/imagenet.toml")),
    ("cache-routing", include_str!("../../../shards/cache-routing.toml")),
    ("batched-routing", include_str!("../../../shards/batched-routing.toml")),
    ("multi-crop", include_str!("../../../shards/multi-crop.toml")),
    ("imagenet-train", include_str!("../../../shards/imagenet-train.toml")),
    ("dinov2", include_str!("../../../shards/dinov2.toml")),
];

/// A plan file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// One line for `shardpipe plans`.
    pub description: String,
    pub source: Source,
    #[serde(default, rename = "stage")]
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub placement: PlacementSpec,
    #[serde(default)]
    pub sink: SinkSpec,
}

/// Where items come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Integers `0..count` (0 with `duration`: endless).
    pub count: Option<u64>,
    /// A directory of files (every regular file in it, sorted).
    pub dir: Option<PathBuf>,
    /// Files matching a pattern: `*` and `?` in the last part (`data/*.bin`), sorted.
    pub glob: Option<String>,
    /// An image folder (one sub-directory per class), loaded with labels.
    pub images: Option<PathBuf>,
    /// `dir`: make `files` files of `file_kib` KiB first if it has none; `images`: make
    /// `files` generated JPEGs (`seed`, `classes`; `format = "png"`, `"webp"`, `"gif"`, `"bmp"` or `"tiff"` for others)
    /// first if it has none.
    pub generate: Option<Generate>,
    /// `images`: shuffle every epoch with this seed.
    pub shuffle: Option<u64>,
    /// `images`: this process's rank of `world_size` (each loads its own part).
    pub rank: Option<usize>,
    pub world_size: Option<usize>,
    /// `images`: drop the uneven tail of each epoch so every rank loads the same number.
    #[serde(default)]
    pub drop_last: bool,
    /// Passes over the source (each ends with an epoch marker when more than one).
    #[serde(default = "one")]
    pub epochs: u64,
    /// Open loop: items per second (0 or absent: closed loop).
    #[serde(default)]
    pub rate: f64,
}

/// Files a plan makes for itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub files: u64,
    pub file_kib: Option<u64>,
    pub seed: Option<u64>,
    pub classes: Option<u32>,
    pub format: Option<Encoding>,
}

/// How generated images are encoded (`gen-images --format`, a plan's `generate.format`).
#[derive(Debug, Clone, Copy, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
    Tiff,
}

impl Encoding {
    pub fn format(self) -> shardpipe::images::ImageFormat {
        match self {
            Self::Jpeg => shardpipe::images::ImageFormat::Jpeg,
            Self::Png => shardpipe::images::ImageFormat::Png,
            Self::Webp => shardpipe::images::ImageFormat::WebP,
            Self::Gif => shardpipe::images::ImageFormat::Gif,
            Self::Bmp => shardpipe::images::ImageFormat::Bmp,
            Self::Tiff => shardpipe::images::ImageFormat::Tiff,
        }
    }
}

fn one() -> u64 {
    1
}

/// One stage: an op from the catalog and its options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub op: Op,
    /// `spin`, `sleep`: microseconds per item.
    pub us: Option<u64>,
    /// `batch`: items per batch.
    pub size: Option<usize>,
    /// `batch`: drop the incomplete last batch.
    #[serde(default)]
    pub drop_last: bool,
    /// `batch` of images: `hwc` (the default) or `chw` (one plane per channel, PyTorch's order).
    pub layout: Option<LayoutSpec>,
    /// `resize`: the target size.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `resize`: training crops (a random resized crop and flip per image) instead of the
    /// center crop.
    pub augment: Option<AugmentSpec>,
    /// `resize`: the share of the centered crop's sides kept (0.875: torchvision's
    /// `Resize(256)` + `CenterCrop(224)`).
    pub crop_fraction: Option<f64>,
    /// `resize` without `augment`: the center crop's filter (default bilinear; `augment`
    /// takes its own).
    pub resample: Option<ResampleSpec>,
    /// `views`: the views made of each image (`view_spec`).
    pub views: Option<Vec<crate::view_spec::ViewSpec>>,
    /// `normalize`: per-channel mean and std in [0, 1] units (default: ImageNet's).
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    /// `mixup`: timm's Mixup/CutMix settings (`batch_spec`).
    pub mixup: Option<crate::batch_spec::MixupSpec>,
    /// `erase`: timm's random-erasing settings (`batch_spec`).
    pub erase: Option<crate::batch_spec::EraseSpec>,
    /// Items queued ahead of the stage.
    pub buffer: Option<usize>,
    pub name: Option<String>,
    /// Tasks in flight: a count, or per CPU (`"cpus"`, `"cpus*2"`).
    pub concurrency: Option<Concurrency>,
    #[serde(default)]
    pub ordered: bool,
    pub max_failures: Option<u64>,
    /// The fraction of calls that may fail (0.05: 5%), judged after 100 calls.
    pub max_failure_rate: Option<f64>,
    /// Run only on these shards.
    pub shards: Option<Vec<usize>>,
    /// `route`: the stages of each path.
    pub paths: Option<Vec<Vec<Stage>>>,
    /// `route`: the share of items each path gets (default: equal).
    pub weights: Option<Vec<u32>>,
    /// `route`: route the items inside each batch (it gets batches from `batch`); each path
    /// gets the sub-batch of its items (SPDL's `batched=True`).
    #[serde(default)]
    pub batched: bool,
}

/// `layout = "hwc" | "chw"` on a `batch` of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutSpec {
    Hwc,
    Chw,
}

impl From<LayoutSpec> for shardpipe::images::Layout {
    fn from(l: LayoutSpec) -> Self {
        match l {
            LayoutSpec::Hwc => Self::Hwc,
            LayoutSpec::Chw => Self::Chw,
        }
    }
}

/// The op catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Noop,
    Spin,
    Sleep,
    Read,
    Checksum,
    Batch,
    Unbatch,
    Decode,
    Resize,
    Views,
    Normalize,
    Mixup,
    Erase,
    Route,
}

/// Where the plan runs (`compare` runs both modes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    #[serde(default = "sharded")]
    pub mode: Mode,
    /// Shards when sharded (0: one per CPU).
    #[serde(default)]
    pub shards: usize,
    /// Offload threads on a single loop (0: one per CPU).
    #[serde(default)]
    pub offload_threads: usize,
}

impl Default for PlacementSpec {
    fn default() -> Self {
        Self { mode: Mode::Sharded, shards: 0, offload_threads: 0 }
    }
}

fn sharded() -> Mode {
    Mode::Sharded
}

/// Single loop or sharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Single,
    Sharded,
}

/// The consumer's end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    #[serde(default = "three")]
    pub buffer: usize,
}

impl Default for SinkSpec {
    fn default() -> Self {
        Self { buffer: 3 }
    }
}

fn three() -> usize {
    3
}

/// Why a plan could not be used; `Display` is the one line the command prints.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan '{0}' not found: give a path to a .toml file or one of the plans `shardpipe plans` lists")]
    NotFound(String),
    #[error("{file}: cannot read it: {err}")]
    Read { file: String, err: std::io::Error },
    #[error("{file}: {msg}")]
    Syntax { file: String, msg: String },
    #[error("--set {arg}: expected KEY=VALUE with a dotted key, e.g. --set source.count=1000")]
    SetSyntax { arg: String },
    #[error("--set {arg}: {msg}")]
    SetPath { arg: String, msg: String },
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
}

/// A plan's text and where it came from (a path, or `<embedded NAME>`).
pub struct PlanText {
    pub origin: String,
    pub name: String,
    pub text: String,
}

/// Finds a plan by path, by name in `./shards/`, or among the embedded ones.
pub fn find(arg: &str) -> Result<PlanText, PlanError> {
    let path = Path::new(arg);
    let candidates = [path.to_path_buf(), Path::new("shards").join(format!("{arg}.toml"))];
    for p in candidates {
        if p.is_file() {
            let text =
                std::fs::read_to_string(&p).map_err(|err| PlanError::Read { file: p.display().to_string(), err })?;
            let name = p.file_stem().map_or_else(|| arg.to_owned(), |s| s.to_string_lossy().into_owned());
            return Ok(PlanText { origin: p.display().to_string(), name, text });
        }
    }
    let key = arg.trim_end_matches(".toml").rsplit('/').next().unwrap_or(arg);
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(n, t)| PlanText { origin: format!("<embedded {n}>"), name: (*n).to_owned(), text: (*t).to_owned() })
        .ok_or_else(|| PlanError::NotFound(arg.to_owned()))
}

/// Parses `text`, applies `overrides` (`key.path=value`), and checks the result.
pub fn load(plan: &PlanText, overrides: &[String]) -> Result<Plan, PlanError> {
    let file = plan.origin.clone();
    let mut tree: toml::Table = toml::from_str(&plan.text)
        .map_err(|e| PlanError::Syntax { file: file.clone(), msg: one_line(&e.to_string()) })?;
    for arg in overrides {
        apply_override(&mut tree, arg)?;
    }
    let plan: Plan = toml::Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| PlanError::Invalid { file: file.clone(), msg: one_line(&e.to_string()) })?;
    check(&plan).map_err(|msg| PlanError::Invalid { file, msg })?;
    Ok(plan)
}

/// TOML errors span several lines (a source excerpt); the command prints one.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && l != &"^")
        .collect::<Vec<_>>()
        .join(": ")
}

/// `a.b.0.c=value`: tables by key, lists by index; the value is TOML (`20`, `true`, `"x"`,
/// `[0, 1]`), or else taken as a bare string.
fn apply_override(tree: &mut toml::Table, arg: &str) -> Result<(), PlanError> {
    let (key, raw) = arg.split_once('=').ok_or_else(|| PlanError::SetSyntax { arg: arg.to_owned() })?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PlanError::SetSyntax { arg: arg.to_owned() });
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut root = toml::Value::Table(std::mem::take(tree));
    let result = set_path(&mut root, &parts, value);
    if let toml::Value::Table(t) = root {
        *tree = t;
    }
    result.map_err(|msg| PlanError::SetPath { arg: arg.to_owned(), msg })
}

fn set_path(node: &mut toml::Value, parts: &[&str], value: toml::Value) -> Result<(), String> {
    let (head, rest) = parts.split_first().expect("a non-empty path");
    if rest.is_empty() {
        *step(node, head)? = value;
        return Ok(());
    }
    set_path(step(node, head)?, rest, value)
}

/// One step down a dotted path: a table key (made if missing) or a list index.
fn step<'a>(v: &'a mut toml::Value, part: &str) -> Result<&'a mut toml::Value, String> {
    match v {
        toml::Value::Table(t) => Ok(t.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()))),
        toml::Value::Array(a) => {
            let i: usize = part.parse().map_err(|_| format!("'{part}' is not an index into a list"))?;
            let len = a.len();
            a.get_mut(i).ok_or_else(|| format!("index {i} is past the end of a list of {len}"))
        }
        _ => Err(format!("'{part}' goes through a value that is not a table or a list")),
    }
}

pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Noop => "noop",
        Op::Spin => "spin",
        Op::Sleep => "sleep",
        Op::Read => "read",
        Op::Checksum => "checksum",
        Op::Batch => "batch",
        Op::Unbatch => "unbatch",
        Op::Decode => "decode",
        Op::Resize => "resize",
        Op::Views => "views",
        Op::Normalize => "normalize",
        Op::Mixup => "mixup",
        Op::Erase => "erase",
        Op::Route => "route",
    }
}

#[cfg(test)]
mod tests;
