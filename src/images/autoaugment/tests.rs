use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::images::resize::test_image as image;

fn sample(index: u64, epoch: u64) -> Sample {
    Sample { index, epoch, path: Arc::from(Path::new("x.jpg")), label: None }
}

/// Every draw of `policy` for `n` samples of a 224² image.
fn draws(policy: &RandAugment, n: u64) -> Vec<Vec<AugmentOp>> {
    (0..n).map(|i| policy.draw(&sample(i, 0), 224, 224)).collect()
}

fn counts(ops: impl Iterator<Item = AugmentOp>) -> HashMap<&'static str, usize> {
    let mut c = HashMap::new();
    for op in ops {
        *c.entry(op.name()).or_default() += 1;
    }
    c
}

#[test]
fn timm_names_set_each_section_and_refuse_what_timm_would_not_mean() {
    let RandAugment { policy: Policy::Timm(t), fill, resample, .. } =
        RandAugment::timm(1, "rand-m9-mstd0.5-inc1").unwrap()
    else {
        panic!("a timm policy")
    };
    let increasing = Choices::Even(&timm::RAND_INCREASING);
    assert_eq!((t.layers, t.magnitude, t.hp.std, t.hp.max, t.choices, t.prob), (2, 9.0, 0.5, 10.0, increasing, 0.5));
    assert_eq!((fill, resample), (IMAGENET_MEAN_FILL, None), "bilinear or bicubic at random");
    let Policy::Timm(t) = RandAugment::timm(1, "rand-n3-m7.5-mstd101-mmax12-p1-inc0").unwrap().policy else { panic!() };
    let plain = Choices::Even(&timm::RAND);
    assert_eq!(
        (t.layers, t.magnitude, t.hp.std, t.hp.max, t.choices, t.prob),
        (3, 7.5, f64::INFINITY, 12.0, plain, 1.0)
    );
    let Policy::Timm(t) = RandAugment::timm(1, "rand").unwrap().policy else { panic!() };
    assert_eq!((t.layers, t.magnitude, t.choices), (2, 10.0, plain), "timm's defaults");
    let err = |s: &str| RandAugment::timm(1, s).unwrap_err().to_string();
    assert_eq!(
        err("rand-m9-x3"),
        "auto-augment \"rand-m9-x3\": section \"x3\" is not one of m, n, mstd, mmax, inc, p, t"
    );
    assert!(err("rand-n0").contains("section \"n0\" needs a whole number from 1 to 16"));
    assert!(err("rand-n2.5").contains("needs a whole number from 1 to 16"));
    assert!(err("rand-p2").contains("section \"p2\" needs a probability from 0 to 1"));
    assert!(err("rand-inc2").contains("needs 0 or 1"));
    assert!(err("rand-m").contains("section \"m\" has no value"));
    assert!(err("rand--m9").contains("section \"\" has no value"));
    assert!(err("rand-m9x").contains("section \"m9x\" needs a number from 0 up"));
    assert!(
        err("augmix-m5").starts_with("auto-augment \"augmix-m5\": not a policy name; use timm's"),
        "RandAugment::timm reads rand names only"
    );
}

#[test]
fn torchvision_names_parse_and_bins_are_checked() {
    assert_eq!(RandAugment::parse(3, "ta_wide").unwrap(), RandAugment::trivial_wide(3));
    assert_eq!(RandAugment::parse(3, "ra").unwrap(), RandAugment::torchvision(3, 2, 9).unwrap());
    assert_eq!(RandAugment::parse(3, "ra-m12-n3").unwrap(), RandAugment::torchvision(3, 3, 12).unwrap());
    assert_eq!(RandAugment::parse(3, "rand-m9").unwrap(), RandAugment::timm(3, "rand-m9").unwrap());
    let err = |s: &str| RandAugment::parse(3, s).unwrap_err().to_string();
    assert_eq!(
        err("ra-m31"),
        "auto-augment \"ra-m31\": section \"m31\" needs a bin from 0 to 30 (torchvision's default: 9)"
    );
    assert!(err("ra-n0").contains("section \"n0\" needs a whole number from 1 to 16"));
    assert!(err("ra-q2").contains("section \"q2\" is not one of n (operations) or m (bin)"));
    assert!(err("ra-mx").contains("section \"mx\" needs a whole number"));
    assert!(err("ta").contains("not a policy name"));
    assert!(err("").contains("not a policy name"));
}

#[test]
fn draws_depend_on_seed_epoch_and_index_only() {
    let policy = RandAugment::timm(5, "rand-m9-mstd0.5-inc1").unwrap().random_resample();
    let some: Vec<_> = (0..50).map(|i| policy.draw(&sample(i, 1), 224, 224)).collect();
    let renamed = |i| Sample { path: Arc::from(Path::new("elsewhere.png")), label: Some(3), ..sample(i, 1) };
    assert!((0..50).all(|i| policy.draw(&renamed(i), 224, 224) == some[i as usize]));
    let other_epoch: Vec<_> = (0..50).map(|i| policy.draw(&sample(i, 2), 224, 224)).collect();
    let other_seed = RandAugment::timm(6, "rand-m9-mstd0.5-inc1").unwrap().random_resample();
    let reseeded: Vec<_> = (0..50).map(|i| other_seed.draw(&sample(i, 1), 224, 224)).collect();
    assert_ne!(some, other_epoch);
    assert_ne!(some, reseeded);
    assert!(some.windows(2).any(|w| w[0] != w[1]), "images differ");
}

#[test]
fn timms_recipe_draws_each_operation_evenly_at_the_asked_strength() {
    let policy = RandAugment::timm(9, "rand-m9-mstd0.5-inc1").unwrap();
    let all = draws(&policy, 30_000);
    let applied: usize = all.iter().map(Vec::len).sum();
    // Two tries per image at p = 0.5: Binomial(60000, 0.5), standard deviation 122.
    assert!((29_500..=30_500).contains(&applied), "{applied} operations applied");
    let per_kind = counts(all.iter().flatten().copied());
    assert_eq!(per_kind.len(), 15, "{per_kind:?}");
    // Each of 15 kinds: about 2000, standard deviation 43.
    assert!(per_kind.values().all(|&n| (1800..=2200).contains(&n)), "{per_kind:?}");
    let (mut resamples, mut negative_turns, mut turns) = (HashMap::new(), 0, 0);
    for op in all.iter().flatten() {
        match *op {
            AugmentOp::Rotate { degrees, resample } => {
                // m ~ N(9, 0.5) clamped to [0, 10]: |degrees| = 3 m, mostly 24–30.
                assert!((0.0..=30.0).contains(&degrees.abs()), "{degrees}");
                negative_turns += usize::from(degrees < 0.0);
                turns += 1;
                *resamples.entry(resample).or_insert(0) += 1;
            }
            AugmentOp::Posterize(bits) => assert!(bits <= 2, "increasing posterize keeps few bits: {bits}"),
            AugmentOp::Solarize(t) => assert!((0.0..=103.0).contains(&t), "increasing solarize: low threshold {t}"),
            AugmentOp::SolarizeAdd(a) => assert!((60..=110).contains(&a), "{a}"),
            AugmentOp::Brightness(f) | AugmentOp::Color(f) | AugmentOp::Contrast(f) | AugmentOp::Sharpness(f) => {
                assert!((0.1..=1.9).contains(&f) && (f - 1.0).abs() >= 0.5, "{f}");
            }
            AugmentOp::ShearX { factor, .. } | AugmentOp::ShearY { factor, .. } => {
                assert!((0.2..=0.3).contains(&factor.abs()), "{factor}")
            }
            AugmentOp::TranslateX { pixels, .. } | AugmentOp::TranslateY { pixels, .. } => {
                assert!(pixels.abs() <= 0.45 * 224.0 + 1e-3 && pixels.abs() >= 0.3 * 224.0, "{pixels}")
            }
            _ => {}
        }
    }
    assert!(
        (turns * 45 / 100..=turns * 55 / 100).contains(&negative_turns),
        "{negative_turns} of {turns} turn clockwise"
    );
    assert_eq!(resamples.len(), 2, "bilinear and bicubic at random: {resamples:?}");
    let mean_turn: f64 = all
        .iter()
        .flatten()
        .filter_map(|op| match op {
            AugmentOp::Rotate { degrees, .. } => Some(f64::from(degrees.abs())),
            _ => None,
        })
        .sum::<f64>()
        / turns as f64;
    // E[min(m, 10)] for m ~ N(9, 0.5) is 8.996: 26.99 degrees.
    assert!((mean_turn - 26.99).abs() < 0.15, "mean |rotation| {mean_turn}");
}

#[test]
fn timm_magnitude_settings_change_the_strength() {
    let fixed = RandAugment::timm(2, "rand-m5-p1").unwrap();
    let all = draws(&fixed, 3000);
    assert!(all.iter().all(|ops| ops.len() == 2), "p1: every operation applies");
    for op in all.iter().flatten() {
        match *op {
            AugmentOp::Rotate { degrees, .. } => assert_eq!(degrees.abs(), 15.0),
            AugmentOp::Posterize(bits) => assert_eq!(bits, 2, "original posterize: int(4 × 0.5) bits"),
            AugmentOp::Solarize(t) => assert_eq!(t, 128.0),
            AugmentOp::Brightness(f) => assert_eq!(f, 1.0, "original enhance: 1.8 × 0.5 + 0.1"),
            _ => {}
        }
    }
    let uniform = draws(&RandAugment::timm(2, "rand-m10-mstd101-p1").unwrap(), 5000);
    let turns: Vec<f32> = uniform
        .iter()
        .flatten()
        .filter_map(|op| match op {
            AugmentOp::Rotate { degrees, .. } => Some(degrees.abs()),
            _ => None,
        })
        .collect();
    let mean = turns.iter().sum::<f32>() / turns.len() as f32;
    assert!((mean - 15.0).abs() < 1.2, "uniform magnitudes in [0, 10]: mean |turn| {mean} (15 expected)");
    let stronger = draws(&RandAugment::timm(2, "rand-m20-mmax20-p1-inc1").unwrap(), 3000);
    for op in stronger.iter().flatten() {
        if let AugmentOp::Rotate { degrees, .. } = op {
            assert_eq!(degrees.abs(), 60.0, "mmax lets the level pass 10");
        }
    }
}

#[test]
fn trivial_augment_draws_one_operation_at_a_uniform_bin() {
    let all = draws(&RandAugment::trivial_wide(4), 28_000);
    assert!(all.iter().all(|ops| ops.len() == 1));
    let per_kind = counts(all.iter().flatten().copied());
    assert_eq!(per_kind.len(), 14, "{per_kind:?}");
    // 2000 each, standard deviation 43.
    assert!(per_kind.values().all(|&n| (1800..=2200).contains(&n)), "{per_kind:?}");
    let mut bins = [0usize; 31];
    for op in all.iter().flatten() {
        match *op {
            AugmentOp::Rotate { degrees, resample } => {
                assert_eq!(resample, Resample::Nearest);
                let bin = f64::from(degrees.abs()) / 4.5;
                assert!((bin - bin.round()).abs() < 1e-4, "{degrees}° is not on a bin of 4.5°");
                bins[bin.round() as usize] += 1;
            }
            AugmentOp::TranslateX { pixels, .. } => assert!(pixels.fract() == 0.0 && pixels.abs() <= 32.0),
            AugmentOp::Posterize(bits) => assert!((2..=8).contains(&bits)),
            AugmentOp::Solarize(t) => assert!((0.0..=255.0).contains(&t) && (t / 8.5 - (t / 8.5).round()).abs() < 1e-3),
            AugmentOp::Brightness(f) => assert!((0.01..=1.99).contains(&f)),
            _ => {}
        }
    }
    assert!(bins.iter().all(|&n| n > 20), "every bin drawn: {bins:?}");
    let distinct = |f: fn(&AugmentOp) -> Option<u32>| {
        all.iter().flatten().filter_map(f).collect::<std::collections::HashSet<_>>().len()
    };
    assert_eq!(distinct(|op| if let AugmentOp::Solarize(t) = op { Some(t.to_bits()) } else { None }), 31);
    assert_eq!(distinct(|op| if let AugmentOp::Posterize(b) = op { Some(u32::from(*b)) } else { None }), 7);
}

#[test]
fn torchvision_randaugment_uses_its_bin_for_every_operation() {
    let all = draws(&RandAugment::torchvision(8, 2, 9).unwrap(), 5000);
    assert!(all.iter().all(|ops| ops.len() == 2));
    for op in all.iter().flatten() {
        match *op {
            AugmentOp::Rotate { degrees, .. } => assert_eq!(degrees.abs(), 9.0),
            AugmentOp::ShearX { factor, .. } => assert!((factor.abs() - 0.09).abs() < 1e-6),
            // int(150 / 331 × 224 × 9 / 30) = int(30.45).
            AugmentOp::TranslateX { pixels, .. } => assert_eq!(pixels.abs(), 30.0),
            AugmentOp::Posterize(bits) => assert_eq!(bits, 7, "8 − round(9 / 7.5)"),
            AugmentOp::Solarize(t) => assert_eq!(t, 178.5),
            AugmentOp::Contrast(f) => assert!(((f - 1.0).abs() - 0.27).abs() < 1e-6, "{f}"),
            _ => {}
        }
    }
    assert_eq!(counts(all.iter().flatten().copied()).len(), 14);
}

#[test]
fn apply_runs_the_drawn_operations_in_order_and_refuses_a_malformed_image() {
    let policy = RandAugment::timm(3, "rand-m9-mstd0.5-inc1-n3").unwrap().fill([9, 8, 7]);
    let mut changed = 0;
    for index in 0..40 {
        let img = Image { sample: sample(index, 0), ..image(40, 30, |x, y| [(x * 6) as u8, (y * 8) as u8, 90]) };
        let mut want = img.clone();
        for op in policy.draw(&img.sample, 40, 30) {
            op.apply(&mut want, [9, 8, 7]);
        }
        let got = policy.apply(img.clone()).unwrap();
        assert_eq!(got, want, "image {index}");
        changed += usize::from(got != img);
    }
    assert!(changed >= 30, "most images change: {changed} of 40");
    let mut bad = image(4, 4, |_, _| [1, 2, 3]);
    bad.data.pop();
    let err = policy.apply(bad).unwrap_err().to_string();
    assert_eq!(err, "x: the image holds 47 values, not its 4 × 4 × 3 = 48 (an Image built with the wrong data length)");
}

/// Pillow's results for each operation on a 20 × 14 image (`tests/fixtures/pillow_autoaugment.py`
/// wrote them with Pillow 13), by name.
fn pillow_reference() -> HashMap<&'static str, Vec<u8>> {
    let text = include_str!("../../../tests/fixtures/pillow_autoaugment.txt");
    let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    text.lines().map(|l| l.split_once(' ').unwrap()).map(|(name, data)| (name, hex(data))).collect()
}

/// The script's source image.
fn pillow_source() -> Image<u8> {
    image(20, 14, |x, y| {
        let b = if (x / 4 + y / 3) % 2 == 1 { 200 } else { 30 };
        [((x * 12 + y * 5) & 255) as u8, ((x * y * 3 + 40) & 255) as u8, b]
    })
}

/// The most any value differs from Pillow's, and how many values differ.
fn against_pillow(op: AugmentOp, want: &[u8]) -> (u8, usize) {
    let mut img = pillow_source();
    op.apply(&mut img, IMAGENET_MEAN_FILL);
    assert_eq!(img.data.len(), want.len(), "{op:?}");
    let diffs: Vec<u8> = img.data.iter().zip(want).map(|(a, b)| a.abs_diff(*b)).collect();
    (diffs.iter().copied().max().unwrap(), diffs.iter().filter(|&&d| d > 0).count())
}

#[test]
fn operations_match_pillow() {
    let pillow = pillow_reference();
    assert_eq!(pillow["source"], pillow_source().data, "the script's image");
    let exact = [
        ("autocontrast", AugmentOp::AutoContrast),
        ("equalize", AugmentOp::Equalize),
        ("invert", AugmentOp::Invert),
        ("posterize_3", AugmentOp::Posterize(3)),
        ("solarize_100", AugmentOp::Solarize(100.0)),
        ("solarize_add_60", AugmentOp::SolarizeAdd(60)),
        ("gaussian_blur_0.3", AugmentOp::GaussianBlur(0.3)),
        ("gaussian_blur_1.0", AugmentOp::GaussianBlur(1.0)),
        ("gaussian_blur_2.0", AugmentOp::GaussianBlur(2.0)),
        // A radius past half the image's height: the box reaches over both edges.
        ("gaussian_blur_9.5", AugmentOp::GaussianBlur(9.5)),
    ];
    let mut report = Vec::new();
    for (name, op) in exact {
        report.push((name.to_owned(), against_pillow(op, &pillow[name])));
    }
    let blends = [
        ("color_1.6", AugmentOp::Color(1.6)),
        ("contrast_0.4", AugmentOp::Contrast(0.4)),
        ("brightness_1.3", AugmentOp::Brightness(1.3)),
        ("sharpness_1.8", AugmentOp::Sharpness(1.8)),
        ("sharpness_0.3", AugmentOp::Sharpness(0.3)),
    ];
    for (name, op) in blends {
        report.push((name.to_owned(), against_pillow(op, &pillow[name])));
    }
    for (label, resample) in
        [("nearest", Resample::Nearest), ("bilinear", Resample::Bilinear), ("bicubic", Resample::Bicubic)]
    {
        let ops = [
            ("rotate_27", AugmentOp::Rotate { degrees: 27.0, resample }),
            ("shear_x_0.2", AugmentOp::ShearX { factor: 0.2, resample }),
            ("shear_y_-0.25", AugmentOp::ShearY { factor: -0.25, resample }),
            ("translate_x_5.5", AugmentOp::TranslateX { pixels: 5.5, resample }),
            ("translate_y_-3.25", AugmentOp::TranslateY { pixels: -3.25, resample }),
        ];
        for (name, op) in ops {
            let name = format!("{name}_{label}");
            report.push((name.clone(), against_pillow(op, &pillow[name.as_str()])));
        }
    }
    for (name, (worst, count)) in &report {
        // Pillow truncates blends and filters where these round: one step at most, and two
        // for bicubic, whose weights are looked up at 1/256-pixel steps.
        let allowed = if exact.iter().any(|(n, _)| n == name) || name.ends_with("nearest") {
            0
        } else if name.ends_with("bicubic") {
            2
        } else {
            1
        };
        assert!(*worst <= allowed, "{name}: {count} values differ from Pillow's, by up to {worst}");
    }
    let differing: usize = report.iter().map(|(_, (_, n))| n).sum();
    assert!(differing < report.len() * 840 / 2, "{differing} values differ: most should be equal");
}

#[test]
fn augmix_blends_as_pillow_does() {
    let pillow = pillow_reference();
    let src = pillow_source();
    for (name, alpha) in [("blend_inverted_0.3", 0.3f32), ("blend_inverted_0.77", 0.77)] {
        let got: Vec<u8> = src.data.iter().map(|&v| augmix::pillow_blend(v, 255 - v, alpha)).collect();
        assert_eq!(got, pillow[name], "{name}: Image.blend truncates in f32");
    }
}

/// The distinct operations `policy` draws over `n` images, with signs and filters dropped.
fn kinds(policy: &RandAugment, n: u64) -> Vec<AugmentOp> {
    let mut seen = Vec::new();
    for op in draws(policy, n).into_iter().flatten() {
        let unsigned = match op {
            AugmentOp::Rotate { degrees, .. } => {
                AugmentOp::Rotate { degrees: degrees.abs(), resample: Resample::Nearest }
            }
            AugmentOp::ShearX { factor, .. } => AugmentOp::ShearX { factor: factor.abs(), resample: Resample::Nearest },
            AugmentOp::ShearY { factor, .. } => AugmentOp::ShearY { factor: factor.abs(), resample: Resample::Nearest },
            AugmentOp::TranslateY { pixels, .. } => {
                AugmentOp::TranslateY { pixels: pixels.abs(), resample: Resample::Nearest }
            }
            other => other,
        };
        if !seen.contains(&unsigned) {
            seen.push(unsigned);
        }
    }
    seen
}

#[test]
fn auto_augment_tables_run_their_operations_at_the_tables_magnitudes() {
    let posterize = |name: &str| {
        let mut bits: Vec<u8> = kinds(&RandAugment::parse(1, name).unwrap(), 4000)
            .into_iter()
            .filter_map(|op| if let AugmentOp::Posterize(b) = op { Some(b) } else { None })
            .collect();
        bits.sort_unstable();
        bits
    };
    // original: int(4 m / 10) + 4 at m 8, 7, 6, 5; originalr: 4 − int(4 m / 10); v0: int(4 m / 10)
    // at m 6 and 2; v0r: 4 − that.
    assert_eq!(posterize("original"), vec![6, 7]);
    assert_eq!(posterize("originalr"), vec![1, 2]);
    assert_eq!(posterize("v0"), vec![0, 2]);
    assert_eq!(posterize("v0r"), vec![2, 4]);
    let original = kinds(&RandAugment::parse(1, "original").unwrap(), 4000);
    let has = |ops: &[AugmentOp], op: AugmentOp| ops.contains(&op);
    for op in [
        AugmentOp::Solarize(128.0),                                       // m5: int(256 × 0.5)
        AugmentOp::Color(0.1),                                            // m0: 1.8 × 0 + 0.1
        AugmentOp::Contrast(1.54),                                        // m8
        AugmentOp::Sharpness(1.36),                                       // m7
        AugmentOp::Rotate { degrees: 27.0, resample: Resample::Nearest }, // m9: 30 × 0.9
        AugmentOp::ShearX { factor: 0.15, resample: Resample::Nearest },  // m5: 0.3 × 0.5
        AugmentOp::Invert,
        AugmentOp::AutoContrast,
    ] {
        assert!(has(&original, op), "original draws {op:?}: {original:?}");
    }
    assert!(original.iter().all(|op| !matches!(op, AugmentOp::TranslateX { .. } | AugmentOp::SolarizeAdd(_))));
    let v0 = kinds(&RandAugment::parse(1, "v0").unwrap(), 4000);
    for op in [
        AugmentOp::SolarizeAdd(33), // m3: int(110 × 0.3)
        AugmentOp::SolarizeAdd(77), // m7
        AugmentOp::TranslateY { pixels: 0.405 * 224.0, resample: Resample::Nearest }, // m9: 0.45 × 0.9 × h
        AugmentOp::ShearY { factor: 0.12, resample: Resample::Nearest }, // m4
    ] {
        assert!(has(&v0, op), "v0 draws {op:?}: {v0:?}");
    }
}

#[test]
fn auto_augment_applies_each_sub_policy_operation_at_its_probability() {
    for (name, table) in [("original", &timm::ORIGINAL), ("v0", &timm::V0)] {
        let n = 30_000;
        let ops: usize = draws(&RandAugment::parse(2, name).unwrap(), n).iter().map(Vec::len).sum();
        // Each image runs one of the 25 sub-policies; each operation applies with its probability.
        let want = table.iter().flat_map(|sub| sub.iter().map(|(_, p, _)| p)).sum::<f64>() / table.len() as f64;
        let mean = ops as f64 / n as f64;
        assert!((mean - want).abs() < 0.02, "{name}: {mean} operations per image, want {want}");
    }
    // 3a: one of three, always applied: solarize at 128, greyscale, or a blur of radius in [0.1, 2).
    let three = draws(&RandAugment::parse(2, "3a").unwrap(), 3000);
    assert!(three.iter().all(|d| d.len() == 1));
    let c = counts(three.iter().flatten().copied());
    for kind in ["Solarize", "Color", "GaussianBlur"] {
        assert!((900..1100).contains(&c[kind]), "{kind}: {} of 3000", c[kind]);
    }
    for op in three.iter().flatten() {
        match *op {
            AugmentOp::Solarize(t) => assert_eq!(t, 128.0),
            AugmentOp::Color(f) => assert_eq!(f, 0.0, "Desaturate at m10: grey"),
            AugmentOp::GaussianBlur(r) => assert!((0.1..2.0).contains(&r), "radius {r}"),
            other => panic!("3a drew {other:?}"),
        }
    }
    let noisy = draws(&RandAugment::parse(2, "3a-mstd2").unwrap(), 3000);
    assert!(noisy.iter().flatten().any(|op| matches!(op, AugmentOp::Color(f) if *f > 0.0)), "mstd varies magnitudes");
    let err = |s: &str| RandAugment::parse(2, s).unwrap_err().to_string();
    assert_eq!(
        err("v0-m9"),
        "auto-augment \"v0-m9\": section \"m9\" is not mstd (the only setting of an AutoAugment table)"
    );
    assert!(err("original-mstd").contains("section \"mstd\" has no value"));
    assert!(err("v1").contains("not a policy name"));
}

#[test]
fn timm_transform_sets_draw_from_their_operations() {
    let three_a = draws(&RandAugment::parse(4, "rand-m9-n2-p1-t3a").unwrap(), 3000);
    let c = counts(three_a.iter().flatten().copied());
    assert_eq!(c.len(), 3, "{c:?}");
    for kind in ["Solarize", "Color", "GaussianBlur"] {
        assert!((1800..2200).contains(&c[kind]), "{kind}: {} of 6000", c[kind]);
    }
    // Weighted sets draw without replacement: two different kinds per image; Rotate (weight 3)
    // comes up most, Invert (0.05) rarely.
    let weighted = draws(&RandAugment::parse(4, "rand-m9-p1-tweights").unwrap(), 5000);
    assert!(weighted.iter().all(|d| d.len() == 2 && d[0].name() != d[1].name()), "no kind twice in an image");
    let c = counts(weighted.iter().flatten().copied());
    let rotate = c["Rotate"] as f64 / 5000.0;
    // P(Rotate first) + P(another first, then Rotate among the rest).
    let total: f64 = timm::RAND_WEIGHTED_0.iter().map(|(_, w)| w).sum();
    let (first, w_rotate) = (3.0 / total, 3.0);
    let second: f64 = timm::RAND_WEIGHTED_0
        .iter()
        .filter(|(op, _)| *op != timm::TimmOp::Rotate)
        .map(|(_, w)| w / total * w_rotate / (total - w))
        .sum();
    assert!((rotate - (first + second)).abs() < 0.03, "Rotate in {rotate} of images, want {}", first + second);
    assert!(c.get("Invert").copied().unwrap_or(0) < 100, "{c:?}");
    let err = |s: &str| RandAugment::parse(4, s).unwrap_err().to_string();
    assert_eq!(
        err("rand-n15-t3aw"),
        "auto-augment \"rand-n15-t3aw\": section \"n15\" draws without replacement from a weighted set of 14: at most n14"
    );
    assert!(err("rand-tbig").contains("section \"tbig\" is not a transform set: t3a, t3aw or tweights"));
    let all = RandAugment::parse(4, "rand-n14-p1-t3aw").unwrap().draw(&sample(0, 0), 9, 9);
    let c = counts(all.into_iter());
    assert_eq!((c.len(), c["Color"]), (13, 2), "n14 of 14 draws the whole set (Desaturate is a Color): {c:?}");
}
