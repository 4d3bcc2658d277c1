//! `views = [...]` on a plan's `views` stage: the TOML form of the library's
//! [`Views`](shardpipe::images::Views), checked into one.
//!
//! ```toml
//! [[stage]]
//! op = "views"
//! views = [
//!   { width = 224, height = 224, copies = 2, augment = { seed = 7, scale = [0.4, 1.0] } },
//!   { width = 96, height = 96, copies = 6, augment = { seed = 7, scale = [0.05, 0.4] } },
//! ]
//! ```

use serde::Deserialize;
use shardpipe::images::{AugmentPolicy, Crop, View, Views};

use crate::augment_spec::{AugmentSpec, ResampleSpec, center_crop};
use crate::chain::MAX_SIDE;

/// One entry of `views`: a crop (`width`, `height`, and `augment` or `crop_fraction`) or an
/// earlier view augmented again (`of`, `auto_augment`, `seed`), `copies` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A random resized crop and flip (and jitter, policy) per image; left out: a center crop.
    pub augment: Option<AugmentSpec>,
    /// A center crop's share of the centered region's sides.
    pub crop_fraction: Option<f64>,
    /// A center crop's filter (default bilinear; `augment` takes its own).
    pub resample: Option<ResampleSpec>,
    /// The view (counting every copy, from 0) this one augments again.
    pub of: Option<usize>,
    /// With `of`: the policy, by the names `augment.auto_augment` takes.
    pub auto_augment: Option<String>,
    /// With `of`: the policy's seed.
    pub seed: Option<u64>,
    /// How many views this entry makes (each draws its own crops).
    #[serde(default = "one")]
    pub copies: usize,
}

fn one() -> usize {
    1
}

/// The most views per image a plan may ask for.
pub const MAX_VIEWS: usize = 64;

/// The views `specs` describe, or one line saying which entry is wrong and how.
pub fn build(specs: &[ViewSpec]) -> Result<Views, String> {
    let mut views = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let at = format!("views[{k}]");
        if spec.copies == 0 {
            return Err(format!("{at}: copies = 0 makes no view; give 1 or more, or drop the entry"));
        }
        if views.len() + spec.copies > MAX_VIEWS {
            return Err(format!("{at}: makes more than {MAX_VIEWS} views per image in all; ask for fewer copies"));
        }
        let view = one_view(spec).map_err(|e| format!("{at}: {e}"))?;
        views.extend(std::iter::repeat_n(view, spec.copies));
    }
    Views::new(views).map_err(|e| e.to_string())
}

fn one_view(spec: &ViewSpec) -> Result<View, String> {
    let crop_keys = spec.width.is_some()
        || spec.height.is_some()
        || spec.augment.is_some()
        || spec.crop_fraction.is_some()
        || spec.resample.is_some();
    let of_keys = spec.of.is_some() || spec.auto_augment.is_some() || spec.seed.is_some();
    match (spec.of, crop_keys) {
        (None, _) if of_keys => {
            Err("`auto_augment` and `seed` go with `of = N` (a view augmented again); a cropped view takes them inside `augment`".into())
        }
        (None, _) => {
            let (Some(w), Some(h)) = (spec.width, spec.height) else {
                return Err("needs `width` and `height` (or `of = N` to augment an earlier view again)".into());
            };
            if w > MAX_SIDE || h > MAX_SIDE {
                return Err(format!("{w}×{h} is more than the {MAX_SIDE} pixels a side this command accepts"));
            }
            let crop = match (&spec.augment, spec.crop_fraction) {
                (Some(_), Some(_)) => {
                    return Err("`crop_fraction` is for center crops; an `augment` view crops with its `scale` (drop one)".into());
                }
                (Some(_), None) if spec.resample.is_some() => {
                    return Err("`resample` here is a center crop's filter; an `augment` view takes it inside `augment`".into());
                }
                (Some(a), None) => Crop::Random(a.build()?),
                (None, f) => center_crop(f, spec.resample),
            };
            Ok(View::crop(w, h, crop))
        }
        (Some(_), true) => Err(
            "a view with `of` has the size of the view it augments: drop `width`, `height`, `augment`, `crop_fraction` and `resample`"
                .into(),
        ),
        (Some(of), false) => {
            let (Some(name), Some(seed)) = (&spec.auto_augment, spec.seed) else {
                return Err("`of` needs `auto_augment = \"augmix-m3-w3\"` (or any policy name) and `seed`".into());
            };
            let policy = AugmentPolicy::parse(seed, name).map_err(|e| e.to_string())?;
            Ok(View::augmented(of, policy))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(toml_text: &str) -> Vec<ViewSpec> {
        #[derive(Deserialize)]
        struct Doc {
            views: Vec<ViewSpec>,
        }
        toml::from_str::<Doc>(toml_text).unwrap().views
    }

    fn err(toml_text: &str) -> String {
        build(&specs(toml_text)).unwrap_err()
    }

    #[test]
    fn copies_expand_in_order_and_of_counts_every_copy() {
        let views = build(&specs(
            r#"views = [
                { width = 32, height = 32, copies = 2, augment = { seed = 1, scale = [0.4, 1.0] } },
                { width = 16, height = 8, copies = 3, augment = { seed = 1 } },
                { width = 20, height = 20, crop_fraction = 0.875 },
                { of = 4, auto_augment = "augmix-m3-w3", seed = 2 },
                { width = 20, height = 20, crop_fraction = 0.875, resample = "bicubic" },
            ]"#,
        ))
        .unwrap();
        assert_eq!(views.sizes(), [(32, 32), (32, 32), (16, 8), (16, 8), (16, 8), (20, 20), (16, 8), (20, 20)]);
        let want = shardpipe::images::Views::new([
            View::crop(20, 20, Crop::Center(0.875)),
            View::crop(20, 20, Crop::CenterWith(0.875, shardpipe::images::Resample::Bicubic)),
        ]);
        let got = build(&specs(
            r#"views = [{ width = 20, height = 20, crop_fraction = 0.875 }, { width = 20, height = 20, crop_fraction = 0.875, resample = "bicubic" }]"#,
        ));
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }

    #[test]
    fn each_mistake_names_the_entry_and_the_fix() {
        assert!(err("views = []").contains("the list is empty"));
        assert_eq!(
            err("views = [{ width = 8, height = 8, copies = 0 }]"),
            "views[0]: copies = 0 makes no view; give 1 or more, or drop the entry"
        );
        assert!(err("views = [{ width = 8 }]").starts_with("views[0]: needs `width` and `height`"));
        assert!(
            err("views = [{ width = 8, height = 8 }, { of = 0, width = 8 }]")
                .starts_with("views[1]: a view with `of` has the size of the view it augments")
        );
        assert!(err("views = [{ width = 8, height = 8, seed = 3 }]").contains("go with `of = N`"));
        assert!(err("views = [{ width = 8, height = 8 }, { of = 0, seed = 3 }]").contains("`of` needs `auto_augment"));
        assert!(
            err(r#"views = [{ width = 8, height = 8 }, { of = 0, seed = 3, auto_augment = "rand-q1" }]"#)
                .starts_with("views[1]: auto-augment \"rand-q1\"")
        );
        assert!(
            err(r#"views = [{ width = 8, height = 8 }, { of = 1, seed = 3, auto_augment = "rand-m9" }]"#)
                .contains("view 1 augments view 1, which is not before it")
        );
        assert!(
            err(r#"views = [{ width = 8, height = 8, resample = "bicubic", augment = { seed = 1 } }]"#)
                .contains("an `augment` view takes it inside `augment`")
        );
        assert!(
            err("views = [{ width = 8, height = 8, crop_fraction = 0.5, augment = { seed = 1 } }]")
                .contains("`crop_fraction` is for center crops")
        );
        assert!(
            err("views = [{ width = 8, height = 8, augment = { seed = 1, flip = 3 } }]").contains("augment flip 3")
        );
        assert!(err("views = [{ width = 8, height = 8, crop_fraction = 2 }]").contains("crop fraction 2 is outside"));
        assert!(err("views = [{ width = 8, height = 8, copies = 65 }]").contains("more than 64 views"));
        assert!(err("views = [{ width = 0, height = 8 }]").contains("view 0 is 0×8"));
    }
}
