//! The plan keys of the batch-level augmentations: `mixup = { … }` on a `mixup` stage (timm's
//! Mixup/CutMix with soft targets) and `erase = { … }` on an `erase` stage (timm's random
//! erasing), turned into the library's [`Mixup`] and [`Erasing`].
//!
//! ```toml
//! [[stage]]
//! op = "erase"
//! erase = { seed = 3, prob = 0.25, mode = "pixel" }      # timm's --reprob 0.25 --remode pixel
//!
//! [[stage]]
//! op = "mixup"
//! mixup = { seed = 5 }                                    # timm's --mixup 0.8 --cutmix 1.0 --smoothing 0.1
//! ```

use serde::Deserialize;
use shardpipe::images::{Erasing, Fill, Mixup};

/// `mixup = { seed, … }`: timm's `Mixup` in batch mode, its recipe defaults for the keys left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixupSpec {
    pub seed: u64,
    /// The length of each target row (default: the image folder's classes).
    pub classes: Option<u32>,
    /// `λ ~ Beta(α, α)` for Mixup (default 0.8; 0: CutMix only).
    pub mixup_alpha: Option<f64>,
    /// `λ ~ Beta(α, α)` for CutMix (default 1.0; 0: Mixup only).
    pub cutmix_alpha: Option<f64>,
    /// The chance that a batch is mixed at all (default 1).
    pub prob: Option<f64>,
    /// With both on, the chance of CutMix rather than Mixup (default 0.5).
    pub switch_prob: Option<f64>,
    /// The share of each target spread over every class (default 0.1).
    pub label_smoothing: Option<f64>,
}

impl MixupSpec {
    /// The library's [`Mixup`] for `classes` classes when the spec names none, or why a value
    /// is out of range (the library's message, which names the key).
    pub fn build(&self, classes: u32) -> Result<Mixup, String> {
        let build = || -> Result<Mixup, shardpipe::images::MixupError> {
            let mut m = Mixup::new(self.seed, self.classes.unwrap_or(classes))?;
            // Alphas are set together: turning one off first must not look like turning both off.
            let (mix, cut) = (self.mixup_alpha.unwrap_or(0.8), self.cutmix_alpha.unwrap_or(1.0));
            m = if mix == 0.0 {
                m.cutmix_alpha(cut)?.mixup_alpha(mix)?
            } else {
                m.mixup_alpha(mix)?.cutmix_alpha(cut)?
            };
            if let Some(p) = self.prob {
                m = m.prob(p)?;
            }
            if let Some(p) = self.switch_prob {
                m = m.switch_prob(p)?;
            }
            if let Some(s) = self.label_smoothing {
                m = m.label_smoothing(s)?;
            }
            Ok(m)
        };
        build().map_err(|e| format!("mixup: {e}"))
    }
}

/// `erase = { seed, … }`: timm's `RandomErasing`, its defaults for the keys left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseSpec {
    pub seed: u64,
    /// The chance that an image is erased (default 0.5; timm's recipes use 0.25).
    pub prob: Option<f64>,
    /// A box's area as fractions of the image (default `[0.02, 0.333]`).
    pub area: Option<[f64; 2]>,
    /// A box's aspect ratio, height over width (default `[0.3, 3.33]`).
    pub ratio: Option<[f64; 2]>,
    /// Boxes per erased image, drawn in `min..=max` (default `[1, 1]`).
    pub count: Option<[u32; 2]>,
    /// timm's `--remode`: `const` (zeros, the default), `rand` (a normal value per channel) or
    /// `pixel` (one per value).
    pub mode: Option<EraseMode>,
    /// On batches of views: the first view erased (1 leaves the clean first split alone, as
    /// timm's `--aug-splits` does); default 0.
    pub from: Option<usize>,
}

/// `mode = "const" | "rand" | "pixel"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EraseMode {
    Const,
    Rand,
    Pixel,
}

impl EraseSpec {
    /// The library's [`Erasing`], or why a value is out of range.
    pub fn build(&self) -> Result<Erasing, String> {
        let build = || -> Result<Erasing, shardpipe::images::ErasingError> {
            let mut e = Erasing::new(self.seed);
            if let Some(p) = self.prob {
                e = e.prob(p)?;
            }
            if let Some([lo, hi]) = self.area {
                e = e.area(lo, hi)?;
            }
            if let Some([lo, hi]) = self.ratio {
                e = e.ratio(lo, hi)?;
            }
            if let Some([lo, hi]) = self.count {
                e = e.count(lo, hi)?;
            }
            Ok(e.fill(match self.mode.unwrap_or(EraseMode::Const) {
                EraseMode::Const => Fill::Zero,
                EraseMode::Rand => Fill::PerChannel,
                EraseMode::Pixel => Fill::PerPixel,
            }))
        };
        build().map_err(|e| format!("erase: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{EMBEDDED, Kind, PlanText, chain, load};

    fn mixup(toml: &str) -> Result<Mixup, String> {
        toml::from_str::<MixupSpec>(toml).map_err(|e| e.to_string())?.build(10)
    }

    fn erase(toml: &str) -> Result<Erasing, String> {
        toml::from_str::<EraseSpec>(toml).map_err(|e| e.to_string())?.build()
    }

    /// The kinds of the `imagenet-train` plan with `sets` applied, or its error.
    fn train_chain(sets: &[&str]) -> Result<Vec<Kind>, String> {
        let text = EMBEDDED.iter().find(|(n, _)| *n == "imagenet-train").unwrap().1;
        let plan = PlanText { origin: "t.toml".into(), name: "t".into(), text: text.into() };
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        load(&plan, &sets).map_err(|e| e.to_string()).and_then(|p| chain(&p))
    }

    #[test]
    fn mixup_and_erase_take_the_batches_timm_gives_them() {
        let mixed = |k: Kind| Kind::Mixed(Box::new(k));
        let kinds = train_chain(&[]).unwrap();
        assert_eq!(kinds[4..], [Kind::FloatBatch, mixed(Kind::FloatBatch), mixed(Kind::FloatBatch)]);
        // Erasing before mixing (timm without its prefetcher).
        let erase_then_mix =
            ["stage.4={ op = \"erase\", erase = { seed = 3 } }", "stage.5={ op = \"mixup\", mixup = { seed = 5 } }"];
        assert_eq!(train_chain(&erase_then_mix).unwrap()[6], mixed(Kind::FloatBatch));
        let views = [
            "stage.2={ op = \"views\", views = [{ width = 32, height = 32, copies = 3, augment = { seed = 1 } }] }",
            "stage.5.erase.from=1",
        ];
        assert_eq!(train_chain(&views).unwrap()[6], mixed(Kind::FloatViewBatch));
    }

    #[test]
    fn misplaced_or_incomplete_stages_say_what_to_change() {
        for (sets, says) in [
            (&["stage.4.mixup.mixup_alpha=-1.0"][..], "stage 5 (op = \"mixup\"): mixup: mixup_alpha -1"),
            (&["stage.5.erase.area=[0.0, 0.5]"], "stage 6 (op = \"erase\"): erase: erasing area 0..0.5"),
            (&["stage.5.erase.from=1"], "`from` picks the first view to erase, but this stage gets image batches"),
            (&["stage.3.mean=[]"], "invalid length 0"),
            (&["stage.4.mixup.classes=0"], "classes 0"),
            (&["stage.2.mixup={ seed = 1 }"], "`mixup` applies only to op = \"mixup\""),
            (&["stage.4.op=\"noop\""], "`mixup` applies only to op = \"mixup\""),
            (
                &["stage.3={ op = \"noop\" }"],
                "stage 5 (op = \"mixup\"): expects image batches, but gets decoded images; put a `batch` stage before it",
            ),
        ] {
            let err = train_chain(sets).unwrap_err();
            assert!(err.contains(says), "{sets:?}: {err}");
        }
        // Pixels are erased only once normalized: a batch without `mean`/`std`.
        let plain = train_chain(&["stage.3={ op = \"batch\", size = 8 }"]).unwrap_err();
        assert!(
            plain.contains("erases normalized batches") && plain.contains("give the `batch` stage `mean` and `std`"),
            "{plain}"
        );
        let missing = train_chain(&["stage.5={ op = \"erase\" }"]).unwrap_err();
        assert!(missing.contains("needs `erase = { seed = 3"), "{missing}");
    }

    #[test]
    fn keys_left_out_take_timms_defaults() {
        assert_eq!(mixup("seed = 5").unwrap(), Mixup::new(5, 10).unwrap());
        assert_eq!(mixup("seed = 5\nclasses = 3").unwrap(), Mixup::new(5, 3).unwrap());
        assert_eq!(erase("seed = 3").unwrap(), Erasing::new(3));
        let timm = Erasing::new(3).prob(0.25).unwrap().fill(Fill::PerPixel);
        assert_eq!(erase("seed = 3\nprob = 0.25\nmode = \"pixel\"").unwrap(), timm);
    }

    #[test]
    fn either_alpha_may_be_turned_off_but_not_both() {
        let cutmix_only = Mixup::new(1, 10).unwrap().mixup_alpha(0.0).unwrap();
        assert_eq!(mixup("seed = 1\nmixup_alpha = 0.0").unwrap(), cutmix_only);
        let mixup_only = Mixup::new(1, 10).unwrap().cutmix_alpha(0.0).unwrap();
        assert_eq!(mixup("seed = 1\ncutmix_alpha = 0.0").unwrap(), mixup_only);
        let err = mixup("seed = 1\nmixup_alpha = 0.0\ncutmix_alpha = 0.0").unwrap_err();
        assert!(err.contains("both 0"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        for (spec, says) in [
            ("seed = 1\nprob = 2.0", "prob 2"),
            ("seed = 1\nswitch_prob = -1.0", "switch_prob -1"),
            ("seed = 1\nlabel_smoothing = 1.0", "label_smoothing 1"),
            ("seed = 1\nclasses = 0", "classes 0"),
            ("seed = 1\nmix = 0.5", "unknown field `mix`"),
        ] {
            let err = mixup(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        for (spec, says) in [
            ("seed = 1\nprob = 1.5", "prob 1.5"),
            ("seed = 1\narea = [0.5, 0.1]", "area 0.5..0.1"),
            ("seed = 1\nratio = [0.0, 1.0]", "ratio 0..1"),
            ("seed = 1\ncount = [0, 2]", "count 0..=2"),
            ("seed = 1\nmode = \"noise\"", "unknown variant `noise`"),
        ] {
            let err = erase(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
