//! Several views of each image, for self-supervised and consistency training: SimCLR, BYOL and
//! MoCo take two random crops of every image, DINO two large and several small ones, timm's
//! `--aug-splits` (AugMix with its JSD loss) one clean crop and that crop augmented again.
//!
//! ```text
//!  Image<u8> ─view 0: crop₀ (its own draws)─▶ Image (w₀×h₀) ─┐
//!            ─view 1: crop₁ (its own draws)─▶ Image (w₁×h₁) ─┼▶ Vec<Image<u8>> ─aggregate(B)─▶
//!            ─view 2: view 0 through a policy ─▶ Image (w₀×h₀) ─┘
//!     ─one collation per view─▶ ViewBatch { views: [ImageBatch (B×h₀×w₀), ImageBatch (B×h₁×w₁), …] }
//! ```
//!
//! Every view after the first draws from streams of its own (its seeds mixed with its
//! position), so two views built from the same [`Augment`](super::Augment) still get different
//! crops, flips, jitter and policy draws, and view 0 draws exactly what the one-view loader
//! draws. Each view of an image reads the decoded image in place: decoding once serves them all.
//! A batch keeps one buffer per view (views may differ in size) from a pool of its own.

use std::sync::Arc;

use super::augment::view_mix;
use super::autoaugment::AugmentPolicy;
use super::{BatchPool, Crop, Image, ImageBatch, ImageError, ImageErrorKind, Layout, Normalize, Sample};

/// How one view of each image is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// `width × height` pixels from the decoded image, as `crop` says: a centered crop or a
    /// random resized crop and flip ([`Crop::Random`], with any colour jitter and policy of its
    /// [`Augment`](super::Augment)).
    Crop {
        /// Width of the view.
        width: u32,
        /// Height.
        height: u32,
        /// Which region is resized, and what follows.
        crop: Crop,
    },
    /// An earlier view of the same image (`of` counts from 0) through `policy`: timm's
    /// `--aug-splits`, where every split after the first is the first crop augmented again
    /// (the first view then has no policy of its own). Same size as view `of`.
    Augmented {
        /// The view it starts from (before this one in the list).
        of: usize,
        /// The augmentation applied to a copy of that view.
        policy: AugmentPolicy,
    },
}

impl View {
    /// A `width × height` view cropped as `crop` says.
    pub fn crop(width: u32, height: u32, crop: Crop) -> Self {
        Self::Crop { width, height, crop }
    }

    /// View `of` again, through `policy`.
    pub fn augmented(of: usize, policy: impl Into<AugmentPolicy>) -> Self {
        Self::Augmented { of, policy: policy.into() }
    }

    /// The same view drawing from view `index`'s streams (view 0's are the view's own).
    fn for_view(self, index: usize) -> Self {
        match self {
            Self::Crop { width, height, crop: Crop::Random(a) } => {
                Self::Crop { width, height, crop: Crop::Random(a.for_view(index)) }
            }
            Self::Crop { .. } => self,
            Self::Augmented { of, policy } => Self::Augmented { of, policy: policy.mixed(view_mix(index)) },
        }
    }
}

/// A list of views [`Views::new`] refuses; each message says what to change.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ViewsError {
    /// No view at all.
    #[error("views: the list is empty; give at least one view (one view is the plain loader)")]
    Empty,
    /// A view with a zero side.
    #[error("view {view} is {width}×{height}: both sides need at least 1 pixel")]
    NoPixels {
        /// Its position in the list.
        view: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// An augmented view that does not start from an earlier view.
    #[error(
        "view {view} augments view {of}, which is not before it; an augmented view starts from an earlier one (0 to {})",
        view.saturating_sub(1)
    )]
    NotEarlier {
        /// Its position in the list.
        view: usize,
        /// The view it names.
        of: usize,
    },
    /// A crop fraction outside (0, 1].
    #[error(
        "view {view}: crop fraction {fraction} is outside (0, 1] (0.875 is torchvision's Resize(256) + CenterCrop(224))"
    )]
    Fraction {
        /// Its position in the list.
        view: usize,
        /// The fraction given.
        fraction: f64,
    },
}

/// The views made of every image, in order ([`Views::apply`]).
///
/// ```
/// use shardpipe::images::{Augment, Crop, View, Views};
///
/// // DINO's multi-crop: two large views and six small ones.
/// let global = Augment::new(7).scale(0.4, 1.0)?;
/// let local = Augment::new(7).scale(0.05, 0.4)?;
/// let views = Views::new(
///     [View::crop(224, 224, Crop::Random(global)); 2].into_iter().chain([View::crop(96, 96, Crop::Random(local)); 6]),
/// )?;
/// assert_eq!(views.count(), 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Views {
    /// As given, each with its own streams.
    views: Vec<View>,
}

impl Views {
    /// The views, checked: at least one, no zero side, center fractions in (0, 1], each
    /// augmented view starting from an earlier one.
    pub fn new(views: impl IntoIterator<Item = View>) -> Result<Self, ViewsError> {
        let views: Vec<View> = views.into_iter().collect();
        if views.is_empty() {
            return Err(ViewsError::Empty);
        }
        for (view, v) in views.iter().enumerate() {
            match *v {
                View::Crop { width, height, .. } if width == 0 || height == 0 => {
                    return Err(ViewsError::NoPixels { view, width, height });
                }
                View::Crop { crop: Crop::Center(fraction) | Crop::CenterWith(fraction, _), .. }
                    if !(fraction > 0.0 && fraction <= 1.0) =>
                {
                    return Err(ViewsError::Fraction { view, fraction });
                }
                View::Augmented { of, .. } if of >= view => return Err(ViewsError::NotEarlier { view, of }),
                _ => {}
            }
        }
        Ok(Self { views: views.into_iter().enumerate().map(|(i, v)| v.for_view(i)).collect() })
    }

    /// Views per image.
    pub fn count(&self) -> usize {
        self.views.len()
    }

    /// The `(width, height)` of each view, in order.
    pub fn sizes(&self) -> Vec<(u32, u32)> {
        let mut sizes: Vec<(u32, u32)> = Vec::with_capacity(self.views.len());
        for v in &self.views {
            let size = match *v {
                View::Crop { width, height, .. } => (width, height),
                View::Augmented { of, .. } => sizes[of],
            };
            sizes.push(size);
        }
        sizes
    }

    /// `image`'s views, in order. The decoded image is read in place by every crop; an
    /// augmented view starts from a copy of the view it names.
    pub fn apply(&self, image: Image<u8>) -> Result<Vec<Image<u8>>, ImageError> {
        let mut out: Vec<Image<u8>> = Vec::with_capacity(self.views.len());
        for v in &self.views {
            let view = match v {
                View::Crop { width, height, crop } => crop.apply_to(&image, *width, *height)?,
                View::Augmented { of, policy } => policy.apply(out[*of].clone())?,
            };
            out.push(view);
        }
        Ok(out)
    }
}

/// One batch of every view: `views[v]` holds view `v` of each image, all in the same sample
/// order, each in one buffer of its own (`[B, H, W, C]` or `[B, C, H, W]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch<T> {
    /// One batch per view.
    pub views: Vec<ImageBatch<T>>,
}

impl<T> ViewBatch<T> {
    /// Images in the batch (each has every view).
    pub fn len(&self) -> usize {
        self.views.first().map_or(0, ImageBatch::len)
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch's samples, in batch order (the same for every view).
    pub fn samples(&self) -> &[Sample] {
        self.views.first().map_or(&[], |b| &b.samples)
    }
}

/// Collates batches of images' views, one [`BatchPool`] per view, so each view's buffers are
/// reused at their own size.
#[derive(Debug)]
pub struct ViewCollator<T> {
    pools: Vec<Arc<BatchPool<T>>>,
}

impl<T: Copy> ViewCollator<T> {
    /// A collator for `views` views per image, keeping up to `keep` buffers per view.
    pub fn new(views: usize, keep: usize) -> Self {
        Self { pools: BatchPool::per_view(views, keep) }
    }

    /// Splits `images` (each image's views) into one list per view, refusing an image with
    /// another number of views than the collator's.
    fn per_view<U>(&self, images: Vec<Vec<Image<U>>>) -> Result<Vec<Vec<Image<U>>>, ImageError> {
        let want = self.pools.len();
        let mut lists: Vec<Vec<Image<U>>> = (0..want).map(|_| Vec::with_capacity(images.len())).collect();
        for (index, views) in images.into_iter().enumerate() {
            if views.len() != want {
                let kind = ImageErrorKind::Views { index, got: views.len(), want };
                let path = views
                    .first()
                    .map(|v| v.sample.path.clone())
                    .unwrap_or_else(|| Arc::from(std::path::Path::new("?")));
                return Err(ImageError::new(&path, kind));
            }
            for (list, view) in lists.iter_mut().zip(views) {
                list.push(view);
            }
        }
        Ok(lists)
    }
}

impl<T: Copy + Default> ViewCollator<T> {
    /// Each view's images collated into one batch in `layout` ([`collate_layout`](super::collate_layout)).
    pub fn collate(&self, images: Vec<Vec<Image<T>>>, layout: Layout) -> Result<ViewBatch<T>, ImageError> {
        let lists = self.per_view(images)?;
        let views = self.pools.iter().zip(lists).map(|(pool, list)| pool.collate_layout(list, layout));
        Ok(ViewBatch { views: views.collect::<Result<_, _>>()? })
    }
}

impl ViewCollator<f32> {
    /// Each view's images normalized and collated in one pass
    /// ([`collate_normalized`](super::collate_normalized)).
    pub fn collate_normalized(
        &self,
        images: Vec<Vec<Image<u8>>>,
        n: &Normalize,
        layout: Layout,
    ) -> Result<ViewBatch<f32>, ImageError> {
        let lists = self.per_view(images)?;
        let views = self.pools.iter().zip(lists).map(|(pool, list)| pool.collate_normalized(list, n, layout));
        Ok(ViewBatch { views: views.collect::<Result<_, _>>()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::resize::test_image;
    use crate::images::{Augment, RandAugment, collate_layout, collate_normalized, resize};

    /// A 61 × 47 image with no two neighbouring pixels alike: any two different crops differ.
    fn scrambled(index: u64) -> Image<u8> {
        let mut image = test_image(61, 47, |x, y| {
            let v = (x * 7919 + y * 104_729) ^ (x * y * 31);
            [v as u8, (v >> 3) as u8, (v >> 6) as u8]
        });
        image.sample.index = index;
        image
    }

    fn random(seed: u64) -> Crop {
        Crop::Random(Augment::new(seed))
    }

    #[test]
    fn view_zero_draws_what_the_one_view_loader_draws_and_later_views_draw_their_own() {
        let augment = Augment::new(5).color_jitter(0.4, 0.4, 0.4, 0.1).unwrap();
        let views = Views::new([View::crop(24, 16, Crop::Random(augment)); 3]).unwrap();
        let mut alike = 0;
        for index in 0..40 {
            let img = scrambled(index);
            let got = views.apply(img.clone()).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], augment.apply(img.clone(), 24, 16).unwrap(), "image {index}: view 0");
            assert_eq!(got, views.apply(img).unwrap(), "image {index}: the same views again");
            alike += usize::from(got[1] == got[0]) + usize::from(got[2] == got[1]) + usize::from(got[2] == got[0]);
        }
        // Three views of one seed drawn alike would be equal every time.
        assert!(alike <= 2, "{alike} of 120 view pairs are equal");
    }

    #[test]
    fn views_of_different_sizes_and_crops_keep_their_order() {
        let views = Views::new([
            View::crop(32, 32, Crop::Center(1.0)),
            View::crop(12, 20, random(1)),
            View::crop(61, 47, Crop::Center(1.0)),
        ])
        .unwrap();
        assert_eq!(views.sizes(), [(32, 32), (12, 20), (61, 47)]);
        let img = scrambled(3);
        let got = views.apply(img.clone()).unwrap();
        assert_eq!(got[0], resize(img.clone(), 32, 32).unwrap());
        assert_eq!((got[1].width, got[1].height), (12, 20));
        assert_eq!(got[2], img, "the whole image at its own size is a copy of it");
    }

    #[test]
    fn an_augmented_view_is_the_view_it_names_through_the_policy_with_draws_of_its_own() {
        let policy = RandAugment::timm(9, "rand-m9-n3-mstd0.5-p1").unwrap();
        let views = Views::new([
            View::crop(32, 24, random(2)),
            View::augmented(0, policy),
            View::augmented(0, policy),
            View::augmented(1, policy),
        ])
        .unwrap();
        assert_eq!(views.sizes(), [(32, 24); 4]);
        let mut changed = [0; 3];
        for index in 0..20 {
            let got = views.apply(scrambled(index)).unwrap();
            let mixed = |v: usize| AugmentPolicy::from(policy).mixed(view_mix(v));
            assert_eq!(got[1], mixed(1).apply(got[0].clone()).unwrap(), "image {index}: view 1");
            assert_eq!(got[3], mixed(3).apply(got[1].clone()).unwrap(), "image {index}: view 3");
            for (k, (a, b)) in [(1, 0), (2, 0), (2, 1)].into_iter().enumerate() {
                changed[k] += usize::from(got[a] != got[b]);
            }
        }
        // Views 1 and 2 augment the same crop with draws of their own, so they differ from it
        // and from each other (three operations per image may still cancel out now and then).
        assert!(changed.iter().all(|&n| n >= 17), "views 1/0, 2/0, 2/1 differed in {changed:?} of 20 images");
    }

    #[test]
    fn bad_lists_are_refused_saying_what_to_change() {
        let err = |v: Vec<View>| Views::new(v).unwrap_err().to_string();
        assert!(err(vec![]).contains("the list is empty"));
        assert_eq!(
            err(vec![View::crop(8, 8, random(1)), View::crop(0, 8, random(1))]),
            "view 1 is 0×8: both sides need at least 1 pixel"
        );
        let policy = RandAugment::timm(1, "rand-m9").unwrap();
        assert!(err(vec![View::augmented(0, policy)]).contains("view 0 augments view 0, which is not before it"));
        assert!(err(vec![View::crop(8, 8, random(1)), View::augmented(3, policy)]).contains(
            "augments view 3, which is not before it; an augmented view starts from an earlier one (0 to 0)"
        ));
        assert!(err(vec![View::crop(8, 8, Crop::Center(1.5))]).contains("view 0: crop fraction 1.5 is outside (0, 1]"));
    }

    #[test]
    fn the_collator_makes_one_batch_per_view_in_the_images_order() {
        let views = Views::new([View::crop(16, 16, random(1)), View::crop(8, 12, random(2))]).unwrap();
        let images: Vec<Vec<Image<u8>>> = (0..5).map(|i| views.apply(scrambled(i)).unwrap()).collect();
        let per_view = |v: usize| images.iter().map(|views| views[v].clone()).collect::<Vec<_>>();
        let collator = ViewCollator::new(2, 2);
        let batch = collator.collate(images.clone(), Layout::Chw).unwrap();
        assert_eq!((batch.len(), batch.views.len()), (5, 2));
        assert_eq!(batch.views[0], collate_layout(per_view(0), Layout::Chw).unwrap());
        assert_eq!(batch.views[1], collate_layout(per_view(1), Layout::Chw).unwrap());
        assert_eq!(batch.views[1].shape, [5, 3, 12, 8]);
        assert_eq!(batch.samples().iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        let n = Normalize::IMAGENET;
        let floats = ViewCollator::new(2, 2).collate_normalized(images.clone(), &n, Layout::Hwc).unwrap();
        assert_eq!(floats.views[1], collate_normalized(per_view(1), &n, Layout::Hwc).unwrap());
        // An image with another number of views is refused, naming it.
        let mut short = images;
        short[3].pop();
        let e = collator.collate(short, Layout::Hwc).unwrap_err().to_string();
        assert_eq!(e, "x: cannot collate views: image 3 has 1 views, not the 2 the collator was made for");
    }
}
