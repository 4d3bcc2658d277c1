//! Image data loading: an image-folder source, JPEG, PNG, WebP, GIF, BMP and TIFF decode, resize
//! and crop, normalization and collation into one contiguous `[B, H, W, C]` or `[B, C, H, W]`
//! batch, on the pipeline's shards.
//!
//! ```text
//!  ImageFolder ─epoch(e)─▶ Sample ─read (io_uring)─▶ Encoded ─decode─▶ Image<u8>
//!     (shuffle, rank/world_size)                      ─resize─▶ Image<u8> (W×H) ─aggregate(B)─▶ collate ─▶ ImageBatch
//! ```
//!
//! - [`ImageFolder`] lists a directory (one sub-directory per class gives labels), reads a
//!   list file ([`ImageFolder::from_list`]: `path [label]` per line) or takes a list of paths;
//!   [`ImageFolder::epoch`] gives each epoch's [`Sample`]s: shuffled with a seed that mixes in
//!   the epoch number, then this rank's share when the job has several processes.
//! - [`read`] reads a sample's file through io_uring; [`decode`] decodes JPEG (zune-jpeg), PNG
//!   (`png`), WebP (`image-webp`), GIF (`gif`), BMP (zune-bmp) and TIFF (`tiff`), told apart by
//!   their first bytes; [`resize`] center-crops to the target's aspect ratio and resizes with
//!   fast_image_resize (a convolution with a bilinear filter, like Pillow's `BILINEAR`);
//!   [`Augment`] crops and flips at random instead, for training (torchvision's
//!   `RandomResizedCrop` and `RandomHorizontalFlip`, and optionally `ColorJitter` and the
//!   self-supervised recipes' random grayscale, Gaussian blur and solarize, drawn per image and
//!   epoch from a seed); [`normalize`] turns pixels into `(x / 255 - mean) / std`
//!   floats; [`collate`] copies a batch's images once into one buffer, which the consumer then
//!   owns (no further copy); [`collate_normalized`] normalizes and lays out ([`Layout`]) in
//!   that same copy.
//! - [`RandAugment`] is timm's RandAugment and AutoAugment and torchvision's RandAugment and
//!   TrivialAugmentWide (Pillow's operations, [`AugmentOp`]); [`AugMix`] mixes chains of them;
//!   [`Augment::auto_augment`] runs either ([`AugmentPolicy`]) after the crop.
//! - [`Views`] makes several views of each image from one decode (SimCLR's two crops, DINO's
//!   multi-crop, timm's `--aug-splits`); [`loader_views`] and [`view_batches`] load them as
//!   one batch per view ([`ViewBatch`]).
//! - [`Erasing`] overwrites a random box of each normalized image (timm's `RandomErasing`);
//!   [`erased`] adds it as a stage.
//! - [`Mixup`] mixes whole batches (Mixup or CutMix, timm's batch mode) and makes their soft
//!   targets; [`mixed`] adds it as a stage.
//! - Every failure is an [`ImageError`] naming the file and the reason; in a pipeline it is a
//!   counted failure of the stage, and the run goes on within `max_failures`.
//! - [`LoaderState`] records which samples a training loop has consumed; saved with a
//!   checkpoint, it lets [`ImageFolder::resume`] start a new loader mid-epoch where the old one
//!   stopped, nothing trained on twice or skipped; [`LoaderState::merge`] and
//!   [`LoaderState::repartition`] resume a job on another number of ranks.
//! - [`loader`] wires the usual chain into a [`PipelineBuilder`](crate::pipeline::PipelineBuilder);
//!   [`synth`] writes deterministic ImageNet-like JPEG (or PNG, WebP, GIF, BMP, TIFF) sets for
//!   tests, benches and demos.
//!
//! The guide below is `docs/data-loading.md` (its example is compiled as a doc test); the crate
//! choice is measured in `docs/decisions.md`.
//!
#![doc = include_str!("../../docs/data-loading.md")]
#![forbid(unsafe_code)]

mod augment;
mod autoaugment;
mod batch;
mod bmp;
mod collect;
mod decode;
mod elastic;
mod erasing;
mod folder;
mod gif;
mod jitter;
mod kernel_blur;
mod lanes;
mod list;
mod loader;
mod mixup;
mod photometric;
mod png;
mod resize;
mod resume;
pub mod synth;
mod tiff;
mod views;
mod webp;

use std::path::Path;
use std::sync::Arc;

pub use augment::{Augment, AugmentError, Draw, MAX_BLUR_SIGMA};
pub use autoaugment::{
    AugMix, AugMixDraw, AugmentOp, AugmentPolicy, IMAGENET_MEAN_FILL, MAX_LAYERS, RandAugment, RandAugmentError,
    Resample,
};
pub use batch::{BatchPool, ImageBatch, Layout, Normalize, collate, collate_layout, collate_normalized, normalize};
pub use collect::{BatchCollector, BatchSlot, ViewsCollector};
pub use decode::{Encoded, decode, read};
pub use elastic::ElasticError;
pub use erasing::{ErasedBox, Erasing, ErasingError, Fill};
pub use folder::{FolderError, ImageFolder, Sample};
pub use jitter::{Adjust, Jitter};
pub use kernel_blur::MAX_BLUR_KERNEL;
pub use loader::{
    LoaderOptions, POOLED_BATCHES, batches, erased, erased_views, loader, loader_views, mixed, mixed_views,
    normalized_batches, normalized_view_batches, view_batches,
};
pub use mixup::{Mix, Mixable, MixedBatch, MixedViews, Mixup, MixupError};
pub use resize::{Crop, resize, resize_center, resize_center_with};
pub use resume::{LoaderState, ResumeError, StateError};
pub use views::{View, ViewBatch, ViewCollator, Views, ViewsError};

/// Channels per pixel: every image is decoded to RGB.
pub const CHANNELS: usize = 3;

/// A decoded RGB image, `height` rows of `width` pixels of [`CHANNELS`] values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<T> {
    /// The file it came from (and its label).
    pub sample: Sample,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `height × width × CHANNELS` values.
    pub data: Vec<T>,
}

/// The encodings [`decode`] reads, told apart by a file's first bytes.
///
/// - **JPEG** (zune-jpeg): baseline and progressive; grayscale and CMYK become RGB.
/// - **PNG** (`png`): every bit depth and colour type; gray and palette become RGB, 16-bit
///   samples keep their high byte, alpha is dropped (as Pillow's `convert("RGB")` does), an
///   animated PNG gives its default image; chunk checksums are checked.
/// - **WebP** (`image-webp`): lossy and lossless, alpha dropped; an animated file gives its
///   first frame.
/// - **GIF** (`gif`): the first frame on its logical screen, drawn as Pillow draws it.
/// - **BMP** (`zune-bmp`): every header version and bit depth, palettes, bit fields, RLE.
/// - **TIFF** (`tiff`): the first image; gray, RGB(A) and CMYK at 1–16 bits, uncompressed, LZW,
///   Deflate, PackBits, fax or JPEG; palettes at 1–8 bits; not float samples (an
///   [`ImageErrorKind::Unsupported`]).
///
/// More formats may come: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (`FF D8` ...).
    Jpeg,
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// WebP (`RIFF`, a size, `WEBP`).
    WebP,
    /// GIF (`GIF87a` or `GIF89a`).
    Gif,
    /// BMP (`BM`, then a known header size).
    Bmp,
    /// TIFF (`II*\0` or `MM\0*`; BigTIFF with 43).
    Tiff,
}

impl ImageFormat {
    /// The usual file extension: `jpg`, `png`, `webp`, `gif`, `bmp` or `tif`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::Tiff => "tif",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
            Self::Gif => "GIF",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
        })
    }
}

/// Why one file could not become an image: [`Display`](std::fmt::Display) is
/// `path: reason`, the line a stage's failure samples keep.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ImageError {
    /// The file.
    pub path: Arc<Path>,
    /// What went wrong.
    pub kind: ImageErrorKind,
}

/// What went wrong with one file. More kinds may come: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageErrorKind {
    /// It could not be read (missing, permission denied, a directory...).
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// It is larger than the loader accepts.
    #[error("{size} bytes is more than the {limit}-byte limit per file (LoaderOptions::max_file_bytes)")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// It has no bytes.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// It starts like none of the formats [`decode`] reads (convert it to one of them first).
    #[error("not a JPEG, PNG, WebP, GIF, BMP or TIFF file (it starts with {0})")]
    UnknownFormat(String),
    /// The data is corrupt or truncated.
    #[error("corrupt or truncated {format}: {reason}")]
    Corrupt {
        /// What the file started like.
        format: ImageFormat,
        /// What the decoder found wrong.
        reason: String,
    },
    /// The file is of a kind its format's decoder does not read (a TIFF of float samples).
    #[error("{format} of a kind this decoder does not read: {what} (convert it to PNG)")]
    Unsupported {
        /// The file's format.
        format: ImageFormat,
        /// What kind it is.
        what: String,
    },
    /// The image has more pixels than the decoder accepts.
    #[error("{width}×{height} pixels is larger than the decoder's {max}×{max} limit")]
    TooManyPixels {
        /// Width in the header.
        width: usize,
        /// Height in the header.
        height: usize,
        /// The limit on either side.
        max: usize,
    },
    /// The resize was refused (a zero-sized image or target).
    #[error("cannot resize: {0}")]
    Resize(String),
    /// An [`Image`] whose `data` does not hold `width × height × 3` values (one built by hand
    /// with a wrong size), refused by an operation that reads it by position.
    #[error(
        "the image holds {values} values, not its {width} × {height} × 3 = {want} (an Image built with the wrong data length)"
    )]
    Shape {
        /// `data.len()`.
        values: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// What `data.len()` must be.
        want: usize,
    },
    /// An image in a batch of views had another number of views than the batch's collator
    /// (images made by one [`Views`] all have its count).
    #[error("cannot collate views: image {index} has {got} views, not the {want} the collator was made for")]
    Views {
        /// Position in the batch.
        index: usize,
        /// Its number of views.
        got: usize,
        /// The collator's.
        want: usize,
    },
    /// A batch held images of different sizes (resize them to one size first).
    #[error(
        "cannot collate: image {index} is {got:?} but the batch's first is {want:?} (resize every image to one size)"
    )]
    Collate {
        /// Position in the batch.
        index: usize,
        /// Its (width, height).
        got: (u32, u32),
        /// The first image's (width, height).
        want: (u32, u32),
    },
    /// An [`Image`] whose `data` does not hold `width × height × 3` values (one built by hand
    /// with a wrong size): refused rather than collated into a batch with stale or missing values.
    #[error("cannot collate: image {index} holds {values} values, not its {width} × {height} × 3 = {want}")]
    Malformed {
        /// Position in the batch.
        index: usize,
        /// `data.len()`.
        values: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// What `data.len()` must be.
        want: usize,
    },
}

impl ImageError {
    pub(crate) fn new(path: &Arc<Path>, kind: impl Into<ImageErrorKind>) -> Self {
        Self { path: path.clone(), kind: kind.into() }
    }
}
