use super::*;
use crate::augment_spec::center_crop;

fn text(t: &str) -> PlanText {
    PlanText { origin: "test.toml".into(), name: "test".into(), text: t.into() }
}

const BASE: &str = "description = \"x\"\n[source]\ncount = 10\n[[stage]]\nop = \"spin\"\nus = 2\n";

#[test]
fn every_shipped_plan_loads() {
    for (name, t) in EMBEDDED {
        let p = PlanText { origin: (*name).into(), name: (*name).into(), text: (*t).into() };
        load(&p, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn overrides_reach_tables_and_list_items() {
    let p = load(&text(BASE), &["source.count=1000".into(), "stage.0.us=20".into(), "placement.mode=single".into()])
        .unwrap();
    assert_eq!(p.source.count, Some(1000));
    assert_eq!(p.stages[0].us, Some(20));
    assert_eq!(p.placement.mode, Mode::Single);
}

#[test]
fn bad_input_names_the_file_the_key_and_what_was_expected() {
    let e = load(&text("description = \"x\"\n[source]\ncout = 1\n"), &[]).unwrap_err().to_string();
    assert!(e.starts_with("test.toml: ") && e.contains("cout"), "{e}");
    let e = load(&text(BASE), &["source.count=lots".into()]).unwrap_err().to_string();
    assert!(e.contains("invalid type") && e.contains("count"), "{e}");
    let e = load(&text(BASE), &["stage.3.us=1".into()]).unwrap_err().to_string();
    assert!(e.contains("index 3 is past the end of a list of 1"), "{e}");
    let e = load(&text(BASE), &["nonsense".into()]).unwrap_err().to_string();
    assert!(e.contains("expected KEY=VALUE"), "{e}");
    let e = load(&text("description = \"x\"\n[source]\ncount = 1\n[[stage]]\nop = \"read\"\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("stage 1 (op = \"read\"): expects file paths, but gets integers"), "{e}");
    let e = load(&text("description = \"x\"\n[source]\ncount = 1\n[[stage]]\nop = \"decode\"\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("expects image file contents, but gets integers"), "{e}");
    let e = load(&text("description = \"x\"\n[source]\ncount = 1\n[[stage]]\nop = \"decrypt\"\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("unknown variant `decrypt`"), "{e}");
    let e = load(&text("description = \"x\"\n[source\n"), &[]).unwrap_err().to_string();
    assert!(e.starts_with("test.toml: ") && e.contains("line 2"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn concurrency_is_a_count_or_per_cpu_and_bad_values_name_the_key() {
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let at = |v: &str| load(&text(BASE), &[format!("stage.0.concurrency={v}")]);
    assert_eq!(at("8").unwrap().stages[0].concurrency, Some(Concurrency::Fixed(8)));
    let per_cpu = at("cpus*2").unwrap().stages[0].concurrency.unwrap();
    assert_eq!((per_cpu, per_cpu.here()), (Concurrency::PerCpu(2), 2 * cpus));
    assert_eq!(at("\"cpus\"").unwrap().stages[0].concurrency.unwrap().here(), cpus);
    for (bad, says) in [
        ("cpus*x", "\"cpus*x\" is not a count"),
        ("2.5", "invalid type: floating point `2.5`, expected a count"),
        ("-1", "-1 is negative"),
        ("0", "concurrency must be at least 1"),
        ("cpus*0", "concurrency must be at least 1"),
        ("cpus*2000000", "is more than the 1048576 this command accepts"),
    ] {
        let e = at(bad).unwrap_err().to_string();
        assert!(e.contains(says) && e.contains("stage"), "{bad}: {e}");
    }
}

#[test]
fn routes_check_every_path_and_name_the_path_in_errors() {
    let routing = EMBEDDED.iter().find(|(n, _)| *n == "cache-routing").unwrap().1;
    let p = load(&text(routing), &[]).unwrap();
    assert_eq!(chain(&p).unwrap(), [Kind::Int, Kind::Int, Kind::Sum, Kind::Batch(Box::new(Kind::Sum))]);
    let err = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        load(&text(routing), &sets).unwrap_err().to_string()
    };
    let e = err(&["stage.0.paths.1.1.op=\"checksum\""]);
    assert!(e.contains("stage 1 (op = \"route\"): path 1 gives checksums, but path 0 gives integers"), "{e}");
    let e = err(&["stage.0.paths.0.0.op=\"read\""]);
    assert!(e.contains("stage 1 (op = \"route\"), path 0: stage 1 (op = \"read\"): expects file paths"), "{e}");
    assert!(err(&["stage.0.weights=[1]"]).contains("`weights` needs one number per path (2 here)"));
    assert!(err(&["stage.0.weights=[0, 0]"]).contains("not all 0"));
    assert!(err(&["stage.0.paths=[]"]).contains("needs `paths = "));
    assert!(err(&["stage.0.paths.1.0.shards=[0]"]).contains("`shards` cannot be set inside a route's path"));
    assert!(err(&["stage.1.weights=[1]"]).contains("`paths/weights/batched` applies only to op = \"route\""));
}

#[test]
fn image_chains_have_their_kinds_and_their_own_errors() {
    let imagenet = EMBEDDED.iter().find(|(n, _)| *n == "imagenet").unwrap().1;
    let p = load(&text(imagenet), &[]).unwrap();
    let kinds = chain(&p).unwrap();
    assert_eq!(kinds, [Kind::Sample, Kind::Encoded, Kind::Image, Kind::Image, Kind::ImageBatch]);
    let normalized = load(&text(imagenet), &["stage.3.op=\"normalize\"".into(), "stage.3.width=0".into()]);
    assert!(normalized.unwrap_err().to_string().contains("`width/height` applies only to op = \"resize\""));
    let err = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        load(&text(imagenet), &sets).unwrap_err().to_string()
    };
    assert!(err(&["stage.2.width=0"]).contains("needs `width = W and height = H"));
    let chw = load(&text(imagenet), &["stage.3.layout=\"chw\"".into()]).unwrap();
    assert_eq!((chw.stages[3].layout, chain(&chw).unwrap()[4].clone()), (Some(LayoutSpec::Chw), Kind::ImageBatch));
    assert!(err(&["stage.3.layout=\"nchw\""]).contains("unknown variant `nchw`, expected `hwc` or `chw`"));
    assert!(err(&["stage.2.layout=\"chw\""]).contains("`drop_last/layout` applies only to op = \"batch\""));
    let fused = load(&text(imagenet), &["stage.3.std=[0.5, 0.5, 0.5]".into(), "stage.3.layout=\"chw\"".into()]);
    assert_eq!(chain(&fused.unwrap()).unwrap()[4], Kind::FloatBatch, "a batch with mean/std normalizes");
    let e = err(&[
        "stage=[{ op = \"read\" }, { op = \"decode\" }, { op = \"normalize\" }, { op = \"batch\", size = 2, mean = [0.5, 0.5, 0.5] }]",
    ]);
    assert!(e.contains("these images are normalized already"), "{e}");
    assert!(err(&["stage.3.std=[0.5, 0.0, 0.5]"]).contains("every `std` value must be a positive number"));
    assert!(
        err(&["stage.1.mean=[0.5, 0.5, 0.5]"])
            .contains("`mean/std` applies only to op = \"normalize\" (or a \"batch\"")
    );
    let tiny = EMBEDDED.iter().find(|(n, _)| *n == "tiny-tasks").unwrap().1;
    let ints = load(&text(tiny), &["stage=[{ op = \"batch\", size = 2, layout = \"chw\" }]".into()]);
    let e = ints.unwrap_err().to_string();
    assert!(e.contains("`layout` orders the pixels of image batches, but this batch gets integers"), "{e}");
    let ints = load(&text(tiny), &["stage=[{ op = \"batch\", size = 2, mean = [0.5, 0.5, 0.5] }]".into()]);
    let e = ints.unwrap_err().to_string();
    assert!(e.contains("`mean/std` normalize decoded images while collating, but this batch gets integers"), "{e}");
    let augmented = load(&text(imagenet), &["stage.2.augment={ seed = 3, scale = [0.25, 1.0] }".into()]).unwrap();
    let spec = augmented.stages[2].augment.as_ref().unwrap();
    assert_eq!(spec.build().unwrap(), shardpipe::images::Augment::new(3).scale(0.25, 1.0).unwrap());
    assert!(
        err(&["stage.2.augment={ seed = 3, scale = [0.5, 0.1] }"]).contains("augment scale (0.5, 0.1): need 0 < low")
    );
    assert!(err(&["stage.2.augment={ seed = 3, flip = 2 }"]).contains("augment flip 2: need a probability"));
    let jittered = load(&text(imagenet), &["stage.2.augment={ seed = 3, brightness = 0.4, hue = 0.1 }".into()]);
    let spec = jittered.unwrap().stages[2].augment.clone().unwrap();
    assert_eq!(spec.build().unwrap(), shardpipe::images::Augment::new(3).color_jitter(0.4, 0.0, 0.0, 0.1).unwrap());
    assert!(err(&["stage.2.augment={ seed = 3, hue = 0.7 }"]).contains("augment hue 0.7: need 0 to 0.5"));
    let dino = "stage.2.augment={ seed = 3, resample = \"bicubic\", brightness = 0.4, jitter_p = 0.8, grayscale = 0.2, blur = 0.1, solarize = 0.2 }";
    let spec = load(&text(imagenet), &[dino.into()]).unwrap().stages[2].augment.clone().unwrap();
    let want = shardpipe::images::Augment::new(3).resample(shardpipe::images::Resample::Bicubic);
    let want = want.color_jitter(0.4, 0.0, 0.0, 0.0).unwrap().color_jitter_p(0.8).unwrap().grayscale(0.2).unwrap();
    assert_eq!(spec.build().unwrap(), want.blur(0.1, 0.1, 2.0).unwrap().solarize(0.2).unwrap());
    let sigma = load(&text(imagenet), &["stage.2.augment={ seed = 3, blur = 1.0, blur_sigma = [0.5, 1.5] }".into()]);
    let spec = sigma.unwrap().stages[2].augment.clone().unwrap();
    assert_eq!(spec.build().unwrap(), shardpipe::images::Augment::new(3).blur(1.0, 0.5, 1.5).unwrap());
    assert!(err(&["stage.2.augment={ seed = 3, jitter_p = 0.8 }"]).contains("there is no colour jitter to apply"));
    assert!(err(&["stage.2.augment={ seed = 3, blur_sigma = [0.1, 2.0] }"]).contains("set blur = p too"));
    let kernel = load(&text(imagenet), &["stage.2.augment={ seed = 3, blur = 0.5, blur_kernel = 9 }".into()]);
    let spec = kernel.unwrap().stages[2].augment.clone().unwrap();
    let want = shardpipe::images::Augment::new(3).blur(0.5, 0.1, 2.0).unwrap().blur_kernel(9).unwrap();
    assert_eq!(spec.build().unwrap(), want);
    assert!(
        err(&["stage.2.augment={ seed = 3, blur_kernel = 9 }"]).contains("augment blur_kernel 9: set blur = p too")
    );
    assert!(
        err(&["stage.2.augment={ seed = 3, blur = 1.0, blur_kernel = 8 }"])
            .contains("augment blur kernel 8: need an odd number of taps from 1 to 255")
    );
    assert!(
        err(&["stage.2.augment={ seed = 3, blur = 1.0, blur_sigma = [2.0, 1.0] }"])
            .contains("need 0 < low <= high <= 4096, in pixels")
    );
    assert!(
        err(&["stage.2.augment={ seed = 3, grayscale = 1.5 }"]).contains("augment grayscale 1.5: need a probability")
    );
    assert!(err(&["stage.2.augment={ seed = 3, resample = \"lanczos\" }"]).contains("unknown variant `lanczos`"));
    let auto = load(&text(imagenet), &["stage.2.augment={ seed = 3, auto_augment = \"rand-m9-mstd0.5-inc1\" }".into()]);
    let spec = auto.unwrap().stages[2].augment.clone().unwrap();
    let policy = shardpipe::images::RandAugment::timm(3, "rand-m9-mstd0.5-inc1").unwrap();
    assert_eq!(spec.build().unwrap(), shardpipe::images::Augment::new(3).auto_augment(policy));
    assert!(
        err(&["stage.2.augment={ seed = 3, auto_augment = \"rand-m9-q1\" }"])
            .contains("auto-augment \"rand-m9-q1\": section \"q1\" is not one of m, n, mstd, mmax, inc, p, t")
    );
    for name in ["augmix-m5-w4-d2", "original-mstd0.5", "3a"] {
        let auto = load(&text(imagenet), &[format!("stage.2.augment={{ seed = 3, auto_augment = \"{name}\" }}")]);
        let policy = shardpipe::images::AugmentPolicy::parse(3, name).unwrap();
        let want = shardpipe::images::Augment::new(3).auto_augment(policy);
        assert_eq!(auto.unwrap().stages[2].augment.clone().unwrap().build().unwrap(), want, "{name}");
    }
    assert!(
        err(&["stage.2.augment={ seed = 3, auto_augment = \"augmix-w0\" }"])
            .contains("auto-augment \"augmix-w0\": section \"w0\" needs a whole number from 1 to 16")
    );
    assert!(err(&["stage.2.augment={ scale = [0.5, 1.0] }"]).contains("missing field `seed`"));
    assert!(err(&["stage.2.crop_fraction=1.2"]).contains("crop_fraction = 1.2 is outside (0, 1]"));
    let cubic = load(&text(imagenet), &["stage.2.resample=\"bicubic\"".into()]).unwrap();
    assert_eq!(cubic.stages[2].resample, Some(ResampleSpec::Bicubic));
    assert_eq!(
        center_crop(Some(0.875), Some(ResampleSpec::Bicubic)),
        shardpipe::images::Crop::CenterWith(0.875, shardpipe::images::Resample::Bicubic)
    );
    assert_eq!(center_crop(None, None), shardpipe::images::Crop::Center(1.0));
    assert!(
        err(&["stage.2.resample=\"bicubic\"", "stage.2.augment={ seed = 1 }"])
            .contains("an `augment` stage takes it inside: augment = { resample = \"bicubic\", … }")
    );
    assert!(err(&["stage.1.resample=\"bicubic\""]).contains("`resample` applies only to op = \"resize\""));
    assert!(
        err(&["stage.2.crop_fraction=0.875", "stage.2.augment={ seed = 1 }"])
            .contains("`crop_fraction` is for center crops; an `augment` stage crops with its `scale`")
    );
    assert_eq!(
        load(&text(imagenet), &["stage.2.crop_fraction=0.875".into()]).unwrap().stages[2].crop_fraction,
        Some(0.875)
    );
    assert!(err(&["stage.1.augment={ seed = 1 }"]).contains("`augment` applies only to op = \"resize\""));
    assert!(
        err(&["stage.0.op=\"noop\""])
            .contains("stage 2 (op = \"decode\"): expects image file contents, but gets image files")
    );
    assert!(err(&["source.rank=2", "source.world_size=2"]).contains("rank < world_size"));
    assert!(err(&["source.generate.file_kib=4"]).contains("drop `file_kib`"));
    assert!(err(&["source.generate.files=0"]).contains("files = 0, .. }: nothing to make"));
    assert!(
        err(&["source.generate.format=\"avif\""])
            .contains("expected one of `jpeg`, `png`, `webp`, `gif`, `bmp`, `tiff`")
    );
    let png = load(&text(imagenet), &["source.generate.format=\"png\"".into()]).unwrap();
    assert!(matches!(png.source.generate.and_then(|g| g.format), Some(Encoding::Png)));
    assert!(err(&["source.count=5"]).contains("more than one of"));
    let e = load(&text(BASE), &["source.shuffle=1".into()]).unwrap_err().to_string();
    assert!(e.contains("apply to an `images` source"), "{e}");
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Loading must never panic, and every refusal is one line that names the file.
    fn check_outcome(r: Result<Plan, PlanError>) -> Result<(), TestCaseError> {
        match r {
            Ok(plan) => {
                chain(&plan).map_err(|e| TestCaseError::fail(format!("loaded but its chain fails: {e}")))?;
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'), "one line: {msg}");
                prop_assert!(!msg.is_empty());
            }
        }
        Ok(())
    }

    /// A shipped plan with one random edit: bytes cut out, bytes put in, or a line repeated.
    fn mutated() -> impl Strategy<Value = String> {
        let plans: Vec<&'static str> = EMBEDDED.iter().map(|(_, t)| *t).collect();
        let junk = prop_oneof![
            Just("=".to_owned()),
            Just("[[stage]]\n".to_owned()),
            Just("\"".to_owned()),
            Just("-1".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just("1e400".to_owned()),
            Just("op = \"resize\"\n".to_owned()),
            Just("[source]\n".to_owned()),
            Just("nan".to_owned()),
            "[ -~\n]{1,12}",
        ];
        (prop::sample::select(plans), any::<prop::sample::Index>(), 0usize..40, junk, 0u8..3).prop_map(
            |(text, at, cut, junk, how)| {
                let mut s = text.to_owned();
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                match how {
                    0 => {
                        let mut end = (i + cut).min(s.len());
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(i..end, "");
                    }
                    1 => s.insert_str(i, &junk),
                    _ => {
                        let line = s[i..].lines().next().unwrap_or("").to_owned();
                        s.insert_str(i, &format!("{line}\n"));
                    }
                }
                s
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics_the_loader(t in "[ -~\n\t]{0,300}") {
            check_outcome(load(&text(&t), &[]))?;
        }

        #[test]
        fn mutated_shipped_plans_never_panic_the_loader(t in mutated()) {
            check_outcome(load(&text(&t), &[]))?;
        }

        #[test]
        fn arbitrary_overrides_never_panic_the_loader(
            key in "[a-z_.0-9]{0,24}",
            value in prop_oneof![Just("1".to_owned()), Just("-5".to_owned()), Just("[1, 2]".to_owned()),
                Just("{ a = 1 }".to_owned()), Just("\"x\"".to_owned()), "[ -~]{0,16}"],
            base in prop::sample::select(EMBEDDED.iter().map(|(_, t)| *t).collect::<Vec<_>>()),
        ) {
            check_outcome(load(&text(base), &[format!("{key}={value}")]))?;
        }
    }
}
