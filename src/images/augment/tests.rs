use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::images::resize::test_image as image;

fn sample(index: u64, epoch: u64) -> Sample {
    Sample { index, epoch, path: Arc::from(Path::new("x.jpg")), label: None }
}

#[test]
fn crops_lie_inside_the_image_within_the_scale_and_ratio_ranges() {
    let aug = Augment::new(1);
    let mut fallbacks = 0;
    for (i, (w, h)) in [(500, 375), (375, 500), (224, 224), (640, 480), (301, 257)].into_iter().enumerate() {
        for index in 0..2000 {
            let s = sample(index, i as u64);
            let mut rng = aug.generator(&s);
            let Some((left, top, cw, ch)) = aug.attempt_crops(&mut rng, w, h) else {
                fallbacks += 1;
                continue;
            };
            assert!(cw >= 1 && ch >= 1 && left + cw <= w && top + ch <= h, "{w}×{h}: {left},{top} {cw}×{ch}");
            let (share, aspect) = (f64::from(cw * ch) / f64::from(w * h), f64::from(cw) / f64::from(ch));
            // Whole pixels: the drawn sides are rounded, by up to half a pixel each.
            let slack = 1.0 / f64::from(cw.min(ch));
            assert!(share >= 0.08 * (1.0 - slack), "{w}×{h}: area share {share}");
            assert!((0.75 * (1.0 - slack)..=4.0 / 3.0 * (1.0 + slack)).contains(&aspect), "{w}×{h}: aspect {aspect}");
            assert_eq!(aug.draw(&s, w, h).crop, (left, top, cw, ch), "draw takes the same crop");
        }
    }
    // With these ranges an attempt fits about half the time: ten misses in a row are rare.
    assert!(fallbacks < 50, "{fallbacks} fallbacks out of 10000");
}

#[test]
fn draws_depend_on_seed_epoch_and_index_only() {
    let aug = Augment::new(5);
    let d = aug.draw(&sample(3, 1), 500, 375);
    assert_eq!(d, Augment::new(5).draw(&sample(3, 1), 500, 375));
    let renamed = Sample { path: Arc::from(Path::new("elsewhere.png")), label: Some(4), ..sample(3, 1) };
    assert_eq!(d, aug.draw(&renamed, 500, 375));
    assert_ne!(d, aug.draw(&sample(3, 2), 500, 375), "another epoch");
    assert_ne!(d, aug.draw(&sample(4, 1), 500, 375), "another image");
    assert_ne!(d, Augment::new(6).draw(&sample(3, 1), 500, 375), "another seed");
}

#[test]
fn flips_at_the_asked_rate() {
    let count = |p: f64| {
        let aug = Augment::new(9).flip(p).unwrap();
        (0..10_000).filter(|&i| aug.draw(&sample(i, 0), 400, 300).flip).count()
    };
    assert_eq!(count(0.0), 0);
    assert_eq!(count(1.0), 10_000);
    // Binomial(10000, 0.25): standard deviation 43.
    let quarter = count(0.25);
    assert!((2300..=2700).contains(&quarter), "{quarter} flips of 10000 at p = 0.25");
}

#[test]
fn an_image_too_narrow_for_any_attempt_gets_the_centered_fallback() {
    // A 1000×10 strip: every attempt's crop is taller than 10 pixels or wider than allowed.
    let aug = Augment::new(2).scale(0.9, 1.0).unwrap();
    let d = aug.draw(&sample(0, 0), 1000, 10);
    // The widest crop of ratio 4/3 at full height, centered: 13 pixels (round(13.33)).
    assert_eq!(d.crop, ((1000 - 13) / 2, 0, 13, 10));
    let tall = aug.draw(&sample(0, 0), 10, 1000).crop;
    assert_eq!(tall, (0, (1000 - 13) / 2, 10, 13));
}

#[test]
fn a_full_crop_without_flip_is_a_plain_resize_and_a_flip_mirrors_it() {
    // Left half red, right half blue; crops of the whole image only (scale 1, the image's ratio).
    let img = image(200, 100, |x, _| if x < 100 { [255, 0, 0] } else { [0, 0, 255] });
    let whole = Augment::new(1).scale(1.0, 1.0).unwrap().ratio(2.0, 2.0).unwrap();
    let kept = whole.flip(0.0).unwrap().apply(img.clone(), 40, 20).unwrap();
    assert_eq!(kept, crate::images::resize(img.clone(), 40, 20).unwrap());
    let mirrored = whole.flip(1.0).unwrap().apply(img, 40, 20).unwrap();
    let px = |im: &Image<u8>, x: usize, y: usize| im.data[(y * 40 + x) * 3..][..3].to_vec();
    for y in 0..20 {
        for x in 0..40 {
            assert_eq!(px(&mirrored, x, y), px(&kept, 39 - x, y), "({x}, {y})");
        }
    }
    assert_eq!(px(&mirrored, 0, 0), vec![0, 0, 255]);
}

#[test]
fn the_crop_is_what_gets_resized() {
    // A gradient: the output's corners come from the drawn crop's corners.
    let img = image(300, 200, |x, y| [(x * 255 / 299) as u8, (y * 255 / 199) as u8, 0]);
    let aug = Augment::new(11).flip(0.0).unwrap();
    let (left, top, w, h) = aug.draw(&img.sample, 300, 200).crop;
    let out = aug.apply(img, 64, 64).unwrap();
    let corner = |x: usize, y: usize| (out.data[(y * 64 + x) * 3], out.data[(y * 64 + x) * 3 + 1]);
    let expect = |px: u32, py: u32| ((px * 255 / 299) as i32, (py * 255 / 199) as i32);
    for ((ox, oy), (px, py)) in [((0, 0), (left, top)), ((63, 63), (left + w - 1, top + h - 1))] {
        let (got, want) = (corner(ox, oy), expect(px, py));
        // Bilinear averaging over the footprint moves a corner by up to half a source step per output pixel.
        let tol = 2 + (255 * w / 299 / 64).max(255 * h / 199 / 64) as i32;
        assert!((i32::from(got.0) - want.0).abs() <= tol, "x: {got:?} vs {want:?}");
        assert!((i32::from(got.1) - want.1).abs() <= tol, "y: {got:?} vs {want:?}");
    }
}

#[test]
fn colour_jitter_comes_after_the_crop_and_flip_and_leaves_their_draws_alone() {
    let img = image(300, 200, |x, y| [(x * 255 / 299) as u8, (y * 255 / 199) as u8, 90]);
    let plain = Augment::new(4);
    let jittered = plain.color_jitter(0.4, 0.4, 0.4, 0.1).unwrap();
    let mut changed = 0;
    for index in 0..50 {
        let s = sample(index, 1);
        let (d, dj) = (plain.draw(&s, 300, 200), jittered.draw(&s, 300, 200));
        assert_eq!(Draw { color: None, ..dj }, d, "image {index}");
        let jitter = dj.color.expect("drawn when asked for");
        let input = Image { sample: s, ..img.clone() };
        let mut want = plain.apply(input.clone(), 48, 32).unwrap();
        jitter.apply(&mut want);
        let got = jittered.apply(input.clone(), 48, 32).unwrap();
        assert_eq!(got, want, "image {index}: the crop, then the drawn jitter");
        changed += usize::from(got != plain.apply(input, 48, 32).unwrap());
    }
    assert_eq!(changed, 50, "every image's colours change");
}

#[test]
fn an_auto_augment_policy_runs_last_and_leaves_the_crop_draws_alone() {
    let img = image(300, 200, |x, y| [(x * 255 / 299) as u8, (y * 255 / 199) as u8, 90]);
    let plain = Augment::new(4).color_jitter(0.4, 0.4, 0.4, 0.0).unwrap();
    let policy = crate::images::RandAugment::timm(4, "rand-m9-mstd0.5-inc1-p1").unwrap();
    let auto = plain.auto_augment(policy);
    for index in 0..30 {
        let input = Image { sample: sample(index, 2), ..img.clone() };
        assert_eq!(plain.draw(&input.sample, 300, 200), auto.draw(&input.sample, 300, 200), "image {index}");
        let want = policy.apply(plain.apply(input.clone(), 48, 32).unwrap()).unwrap();
        assert_eq!(auto.apply(input, 48, 32).unwrap(), want, "image {index}: crop, flip, jitter, then the policy");
    }
}

#[test]
fn grayscale_blur_and_solarize_follow_the_jitter_and_leave_the_other_draws_alone() {
    let img = image(300, 200, |x, y| [(x * 255 / 299) as u8, (y * 255 / 199) as u8, 90]);
    let jittered = Augment::new(4).color_jitter(0.4, 0.4, 0.2, 0.1).unwrap();
    let dino = jittered.color_jitter_p(0.8).unwrap().grayscale(0.2).unwrap().blur(0.5, 0.1, 2.0).unwrap();
    let dino = dino.solarize(0.2).unwrap();
    let (mut greyed, mut blurred, mut solarized, mut unjittered) = (0, 0, 0, 0);
    for index in 0..200 {
        let input = Image { sample: sample(index, 1), ..img.clone() };
        let (d, dd) = (jittered.draw(&input.sample, 300, 200), dino.draw(&input.sample, 300, 200));
        assert_eq!((d.crop, d.flip), (dd.crop, dd.flip), "image {index}: the same crop and flip");
        assert!(dd.color.is_none() || dd.color == d.color, "image {index}: the same jitter when it applies");
        let mut want = Augment::new(4).flip(0.0).unwrap().apply(input.clone(), 48, 32).unwrap();
        if dd.flip {
            mirror(&mut want);
        }
        if let Some(jitter) = dd.color {
            jitter.apply(&mut want);
        }
        if dd.grayscale {
            crate::images::autoaugment::grayscale(&mut want);
        }
        if let Some(radius) = dd.blur {
            assert!((0.1..=2.0).contains(&radius), "radius {radius}");
            crate::images::autoaugment::gaussian_blur(&mut want, radius);
        }
        if dd.solarize {
            crate::images::autoaugment::solarize(&mut want, 128.0);
        }
        let got = dino.apply(input, 48, 32).unwrap();
        assert_eq!(got, want, "image {index}: crop, flip, jitter, grey, blur, solarize");
        if dd.grayscale {
            assert!(got.data.chunks_exact(3).all(|px| px[0] == px[1] && px[1] == px[2]) || dd.solarize);
        }
        greyed += usize::from(dd.grayscale);
        blurred += usize::from(dd.blur.is_some());
        solarized += usize::from(dd.solarize);
        unjittered += usize::from(dd.color.is_none());
    }
    // Binomial(200, p): every step both came up and stayed down.
    for (n, what) in [(greyed, "grey"), (blurred, "blur"), (solarized, "solarize"), (unjittered, "no jitter")] {
        assert!((10..190).contains(&n), "{what}: {n} of 200");
    }
    let never = jittered.color_jitter_p(0.0).unwrap();
    assert!((0..50).all(|i| never.draw(&sample(i, 0), 300, 200).color.is_none()));
    let always = jittered.color_jitter_p(1.0).unwrap();
    assert!((0..50).all(|i| always.draw(&sample(i, 0), 300, 200) == jittered.draw(&sample(i, 0), 300, 200)));
}

#[test]
fn a_bicubic_crop_rings_at_an_edge_where_a_bilinear_one_does_not() {
    // A sharp step from 50 to 200, enlarged: Catmull–Rom overshoots on both sides of it.
    let img = image(40, 40, |x, _| if x < 20 { [50; 3] } else { [200; 3] });
    let whole = Augment::new(1).scale(1.0, 1.0).unwrap().ratio(1.0, 1.0).unwrap().flip(0.0).unwrap();
    let range = |a: Augment| {
        let out = a.apply(img.clone(), 160, 160).unwrap();
        (*out.data.iter().min().unwrap(), *out.data.iter().max().unwrap())
    };
    assert_eq!(range(whole), (50, 200), "bilinear stays between its inputs");
    let (lo, hi) = range(whole.resample(Resample::Bicubic));
    assert!(lo < 50 && hi > 200, "bicubic overshoots: {lo}..{hi}");
    let flat = image(40, 40, |_, _| [77, 88, 99]);
    let out = whole.resample(Resample::Bicubic).apply(flat, 64, 64).unwrap();
    assert!(out.data.chunks_exact(3).all(|px| px == [77, 88, 99]), "a flat image stays flat");
}

#[test]
fn settings_out_of_range_are_refused_with_the_range() {
    let jitter = |b, c, s, h| Augment::new(0).color_jitter(b, c, s, h).unwrap_err().to_string();
    assert!(jitter(-0.1, 0.0, 0.0, 0.0).starts_with("augment brightness -0.1: need a number from 0 up"));
    assert!(jitter(0.0, f64::NAN, 0.0, 0.0).starts_with("augment contrast NaN"));
    assert!(jitter(0.0, 0.0, f64::INFINITY, 0.0).starts_with("augment saturation inf"));
    assert!(jitter(0.4, 0.4, 0.4, 0.6).starts_with("augment hue 0.6: need 0 to 0.5 (turns of the colour wheel)"));
    assert!(Augment::new(0).color_jitter(0.0, 0.0, 0.0, 0.5).is_ok());
    assert_eq!(Augment::new(0).scale(0.0, 1.0), Err(AugmentError::Scale(0.0, 1.0)));
    assert_eq!(Augment::new(0).scale(0.5, 0.2), Err(AugmentError::Scale(0.5, 0.2)));
    assert_eq!(Augment::new(0).scale(0.5, 1.5), Err(AugmentError::Scale(0.5, 1.5)));
    assert!(matches!(Augment::new(0).scale(f64::NAN, 1.0), Err(AugmentError::Scale(..))));
    assert!(matches!(Augment::new(0).flip(f64::NAN), Err(AugmentError::Flip(..))));
    assert_eq!(Augment::new(0).ratio(0.0, 1.0), Err(AugmentError::Ratio(0.0, 1.0)));
    assert_eq!(Augment::new(0).ratio(1.0, f64::INFINITY), Err(AugmentError::Ratio(1.0, f64::INFINITY)));
    assert_eq!(Augment::new(0).flip(1.5), Err(AugmentError::Flip(1.5)));
    assert!(AugmentError::Scale(0.0, 1.0).to_string().contains("need 0 < low <= high <= 1"));
    assert!(Augment::new(0).scale(0.2, 0.2).is_ok() && Augment::new(0).ratio(1.0, 1.0).is_ok());
    let coin = |r: Result<Augment, AugmentError>| r.unwrap_err().to_string();
    assert!(coin(Augment::new(0).grayscale(1.2)).starts_with("augment grayscale 1.2: need a probability from 0 to 1"));
    assert!(coin(Augment::new(0).color_jitter_p(-0.5)).starts_with("augment jitter_p -0.5: need a probability"));
    assert!(coin(Augment::new(0).solarize(f64::NAN)).starts_with("augment solarize NaN: need a probability"));
    assert!(coin(Augment::new(0).blur(2.0, 0.1, 2.0)).starts_with("augment blur 2: need a probability"));
    assert_eq!(Augment::new(0).blur(0.5, 0.0, 2.0), Err(AugmentError::BlurSigma(0.0, 2.0)));
    assert_eq!(Augment::new(0).blur(0.5, 3.0, 2.0), Err(AugmentError::BlurSigma(3.0, 2.0)));
    assert!(coin(Augment::new(0).blur(0.5, 1.0, f64::INFINITY)).contains("need 0 < low <= high <= 4096, in pixels"));
    assert_eq!(Augment::new(0).blur(0.5, 1.0, 1e9), Err(AugmentError::BlurSigma(1.0, 1e9)));
    assert!(Augment::new(0).blur(0.5, 1.0, MAX_BLUR_SIGMA).is_ok());
    for even_or_wide in [0, 8, MAX_BLUR_KERNEL + 2] {
        assert_eq!(Augment::new(0).blur_kernel(even_or_wide), Err(AugmentError::BlurKernel(even_or_wide)));
    }
    assert!(coin(Augment::new(0).blur_kernel(8)).contains("need an odd number of taps from 1 to 255"));
    assert!(Augment::new(0).blur_kernel(1).is_ok() && Augment::new(0).blur_kernel(MAX_BLUR_KERNEL).is_ok());
}
