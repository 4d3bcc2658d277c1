//! The `shardpipe` command: every shipped plan runs (quick mode), each command works, the JSON
//! and .hgrm outputs have their documented shape, and bad input gets one line and exit code 2.

use std::process::{Command, Output};

fn shardpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardpipe"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// Runs and parses `--json`; `None` (test skipped) where io_uring is unavailable.
fn json(args: &[&str]) -> Option<serde_json::Value> {
    let out = shardpipe(args);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("io_uring") && out.status.code() == Some(2) {
        eprintln!("SKIPPED: {err}");
        return None;
    }
    assert!(out.status.success(), "{args:?} failed: {err}");
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})")))
}

const PLANS: [&str; 7] =
    ["default", "cpu-bound", "io-bound", "tiny-tasks", "tail-latency", "cache-routing", "batched-routing"];

#[test]
fn gen_images_writes_the_same_set_for_the_same_seed() {
    let (a, b, c) = (temp_dir("gen-a"), temp_dir("gen-b"), temp_dir("gen-c"));
    for (dir, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let out = shardpipe(&["gen-images", dir.to_str().unwrap(), "--count", "6", "--seed", seed, "--classes", "2"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("wrote 6 JPEG images"));
    }
    let file = "class-001/img-000003.jpg";
    let read = |d: &std::path::Path| std::fs::read(d.join(file)).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    assert_eq!(&read(&a)[..2], [0xff, 0xd8], "a JPEG");
    let formats: [(&str, &str, &str, &[u8]); 4] = [
        ("png", "PNG", "png", b"\x89PNG\r\n\x1a\n"),
        ("gif", "GIF", "gif", b"GIF89a"),
        ("bmp", "BMP", "bmp", b"BM"),
        ("tiff", "TIFF", "tif", b"II*\0"),
    ];
    for (format, name, extension, magic) in formats {
        let dir = temp_dir(&format!("gen-{format}"));
        let d = dir.to_str().unwrap();
        let out = shardpipe(&["gen-images", d, "--count", "6", "--seed", "5", "--classes", "2", "--format", format]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("wrote 6 {name} images")), "{out:?}");
        let file = std::fs::read(dir.join(format!("class-001/img-000003.{extension}"))).unwrap();
        assert!(file.starts_with(magic), "a {name} file");
    }
    let bad = shardpipe(&["gen-images", temp_dir("gen-bad").to_str().unwrap(), "--format", "avif"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("possible values: jpeg, png, webp, gif, bmp, tiff"), "{bad:?}");
}

/// One epoch of the `imagenet` plan with `images` (a `source.images=…` setting) as `--json`: its
/// run, whose account must balance; `None` (skipped) where io_uring is unavailable.
fn one_epoch(images: &str) -> Option<serde_json::Value> {
    let v = json(&["run", "imagenet", "--set", images, "--set", "source.epochs=1", "--json"])?;
    let run = v["runs"][0].clone();
    assert!(run["account"]["balances"].as_bool().unwrap(), "{run}");
    Some(run)
}

#[test]
fn a_bad_image_is_a_counted_failure_named_in_the_report_and_the_run_goes_on() {
    let dir = temp_dir("bad-image");
    let out = shardpipe(&["gen-images", dir.to_str().unwrap(), "--count", "10", "--classes", "2"]);
    assert!(out.status.success());
    let bad = dir.join("class-000").join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let images = format!("source.images={}", dir.display());
    let Some(run) = one_epoch(&images) else { return };
    assert_eq!((run["items"].as_u64(), run["failed"].as_u64()), (Some(10), Some(1)), "{run}");
    let decode = run["stages"].as_array().unwrap().iter().find(|s| s["name"] == "decode").unwrap();
    let sample = decode["failure_samples"][0].as_str().unwrap();
    assert!(sample.starts_with(&bad.display().to_string()) && sample.contains("not a JPEG"), "{sample}");
    // The table names it too.
    let out = shardpipe(&["run", "imagenet", "--set", &images, "--set", "source.epochs=1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("failed: ") && text.contains("broken.jpg"), "{text}");
}

#[test]
fn an_image_list_is_a_source_and_a_bad_or_empty_list_is_refused_naming_it() {
    let dir = temp_dir("image-list");
    let out = shardpipe(&["gen-images", dir.to_str().unwrap(), "--count", "12", "--classes", "3"]);
    assert!(out.status.success());
    let mut lines = String::from("# path label\n");
    for (label, class) in ["class-000", "class-001", "class-002"].iter().enumerate() {
        for f in std::fs::read_dir(dir.join(class)).unwrap() {
            lines += &format!("{class}/{}\t{label}\n", f.unwrap().file_name().to_string_lossy());
        }
    }
    let list = dir.join("train.tsv");
    std::fs::write(&list, &lines).unwrap();
    let Some(run) = one_epoch(&format!("source.images={}", list.display())) else { return };
    assert_eq!((run["items"].as_u64(), run["failed"].as_u64()), (Some(12), Some(0)), "{run}");

    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "a.jpg 1\nb.jpg\n").unwrap();
    let empty = dir.join("empty.lst");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let unlabelled = dir.join("unlabelled.txt");
    std::fs::write(
        &unlabelled,
        lines.lines().skip(1).map(|l| l.split('\t').next().unwrap().to_owned() + "\n").collect::<String>(),
    )
    .unwrap();
    for (plan, list, expect) in [
        ("imagenet", bad, "bad.txt, line 2: `b.jpg` has no label, but line 1 has a number label"),
        ("imagenet", empty, "empty.lst: the list names no files"),
        ("imagenet-train", unlabelled, "stage 5 (op = \"mixup\"): "),
    ] {
        let args = format!("source.images={}", list.display());
        let out = shardpipe(&["run", plan, "--set", &args]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect) && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_shipped_plan_runs_in_quick_mode_and_accounts_for_every_item() {
    for plan in PLANS {
        let Some(v) = json(&["run", plan, "--items", "200", "--json"]) else { return };
        check_run(plan, &v);
    }
    // The image plan on a small set of its own (the shipped one makes 1024 images).
    let dir = temp_dir("imagenet-quick");
    let images = format!("source.images={}", dir.display());
    let Some(v) = json(&["run", "imagenet", "--set", &images, "--set", "source.generate.files=40", "--json"]) else {
        return;
    };
    check_run("imagenet", &v);
    assert_eq!(v["runs"][0]["items"], 80, "40 images, 2 epochs");
    // The same set, collated channels-first and normalized while collating.
    let fused = ["stage.3.layout=\"chw\"", "stage.3.mean=[0.5, 0.5, 0.5]"];
    let Some(v) = json(&["run", "imagenet", "--set", &images, "--set", fused[0], "--set", fused[1], "--json"]) else {
        return;
    };
    check_run("imagenet", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    // The multi-crop plan on the same set: 8 views of each image; then timm's aug-splits form.
    let Some(v) = json(&["run", "multi-crop", "--set", &images, "--json"]) else { return };
    check_run("multi-crop", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    let splits = r#"stage.2.views=[{ width = 32, height = 32, augment = { seed = 1 } }, { of = 0, auto_augment = "augmix-m3-w3", seed = 1, copies = 2 }]"#;
    let Some(v) = json(&["run", "multi-crop", "--set", &images, "--set", splits, "--json"]) else { return };
    check_run("multi-crop", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    // DINOv2's blur (torchvision's kernel of 9 taps) on a global view and two local ones.
    let dinov2 = r#"stage.2.views=[{ width = 32, height = 32, augment = { seed = 1, scale = [0.32, 1.0], blur = 0.9, blur_kernel = 9, solarize = 0.2 } }, { width = 16, height = 16, copies = 2, augment = { seed = 1, scale = [0.05, 0.32], blur = 0.5, blur_kernel = 9 } }]"#;
    let Some(v) = json(&["run", "multi-crop", "--set", &images, "--set", dinov2, "--json"]) else { return };
    check_run("multi-crop", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    // timm's training recipe: batches of 8 mixed and erased; then the same on aug-splits views
    // (every view mixed, the clean first split left unerased).
    let train = ["run", "imagenet-train", "--set", &images, "--set", "stage.3.size=8", "--json"];
    let Some(v) = json(&train) else { return };
    check_run("imagenet-train", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    let mixed = v["runs"][0]["stages"].as_array().unwrap().iter().find(|s| s["name"] == "mixup").unwrap().clone();
    assert_eq!((&mixed["received"], &mixed["emitted"]), (&10.into(), &10.into()), "{mixed}");
    let views = format!("stage.2={{ op = \"views\", views = {} }}", &splits["stage.2.views=".len()..]);
    let Some(v) = json(&[&train[..], &["--set", &views, "--set", "stage.5.erase.from=1"]].concat()) else { return };
    check_run("imagenet-train", &v);
    assert_eq!((&v["runs"][0]["items"], &v["runs"][0]["failed"]), (&80.into(), &0.into()), "{v}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh directory under the temp directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shardpipe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn check_run(plan: &str, v: &serde_json::Value) {
    assert_eq!(v["plan"], plan);
    let run = &v["runs"][0];
    assert!(run["account"]["balances"].as_bool().unwrap(), "{plan}: {run}");
    assert!(run["items"].as_u64().unwrap() > 0, "{plan}");
    let clock = run["clock"].as_str().unwrap_or_default();
    assert!(clock.starts_with("tsc at ") || clock.starts_with("monotonic ("), "{plan}: clock {clock:?}");
    for key in ["p50", "p90", "p99", "p999", "p9999", "max"] {
        assert!(run["latency_ns"][key].is_u64(), "{plan}: latency_ns.{key}");
    }
    for key in ["mode", "shards", "seconds", "items_per_sec", "failed", "filtered", "stages", "shards_util"] {
        assert!(!run[key].is_null(), "{plan}: {key} missing");
    }
}

#[test]
fn compare_runs_both_modes_alternating() {
    let Some(v) = json(&["compare", "tiny-tasks", "--items", "20000", "--repeat", "2", "--json"]) else { return };
    let modes: Vec<&str> = v["runs"].as_array().unwrap().iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["single", "sharded", "single", "sharded"]);
    assert_eq!(v["runs"][0]["shards"], 1);
}

#[test]
fn overrides_change_the_plan() {
    let Some(v) = json(&["run", "tiny-tasks", "--set", "source.count=3000", "--set", "stage.3.size=1000", "--json"])
    else {
        return;
    };
    let run = &v["runs"][0];
    assert_eq!(run["items"], 3000);
    let batch = run["stages"].as_array().unwrap().iter().find(|s| s["name"] == "batch4").unwrap();
    assert_eq!(batch["emitted"], 3, "batches of 1000");
}

#[test]
fn hgrm_files_have_hdrhistograms_layout() {
    let dir = std::env::temp_dir().join(format!("shardpipe-cli-test-{}", std::process::id()));
    let out = shardpipe(&["run", "tiny-tasks", "--items", "5000", "--hgrm", dir.to_str().unwrap()]);
    if String::from_utf8_lossy(&out.stderr).contains("io_uring") {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = dir.join("tiny-tasks-sharded-1.hgrm");
    let text = std::fs::read_to_string(&file).expect("the .hgrm file");
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"), "{text}");
    assert!(text.contains("#[Mean    =") && text.contains("#[Max     =") && text.contains("#[Buckets ="));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plans_lists_every_shipped_plan_with_its_description() {
    let out = shardpipe(&["plans"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for plan in PLANS.iter().chain(&["imagenet", "multi-crop", "imagenet-train", "dinov2"]) {
        assert!(text.lines().any(|l| l.starts_with(plan) && l.len() > plan.len() + 20), "{plan} missing:\n{text}");
    }
}

#[test]
fn help_names_every_op_of_the_catalog() {
    // The catalog as the plan parser knows it: its "unknown variant" error lists every op.
    let out = shardpipe(&["run", "default", "--set", "stage.0.op=no_such_op"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let list = err.split("expected one of").nth(1).unwrap_or_else(|| panic!("no op list in: {err}"));
    let list = list.split(": in").next().unwrap_or(list);
    let ops: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    assert!(ops.len() >= 10 && ops.contains(&"noop") && ops.contains(&"route"), "{ops:?} from {err}");
    let help = String::from_utf8_lossy(&shardpipe(&["--help"]).stdout).replace('\n', " ");
    let after = help.split("op catalog").nth(1).expect("--help describes the op catalog");
    let listed = after.split('(').nth(1).and_then(|l| l.split(')').next()).expect("a list in parentheses");
    let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
    for op in ops {
        assert!(listed.contains(&op), "--help leaves out `{op}`: {listed:?}");
    }
}

#[test]
fn bad_input_is_one_line_naming_what_to_fix_with_exit_code_2() {
    let cases: [(&[&str], &str); 11] = [
        (
            &["run", "default", "--set", "placement.shards=4096"],
            "placement.shards = 4096, but this process may run on only",
        ),
        (&["run", "no-such-plan"], "plan 'no-such-plan' not found"),
        (
            &["run", "imagenet", "--set", "source.images=Cargo.toml"],
            "images = Cargo.toml: is a file but not a list (.txt",
        ),
        (&["run", "default", "--set", "source.cout=3"], "unknown field `cout`"),
        (&["run", "default", "--set", "stage.9.us=1"], "index 9 is past the end of a list of 4"),
        (&["run", "default", "--set", "source.count=lots"], "invalid type"),
        (&["run", "default", "--rate", "0"], "--rate 0: the rate must be a positive number"),
        (&["run", "default", "--set", "stage.0.op=decode_jpeg"], "unknown variant `decode_jpeg`"),
        (
            &["run", "multi-crop", "--set", "stage.2.views=[{ width = 8 }]"],
            "stage 3 (op = \"views\"): views[0]: needs `width` and `height`",
        ),
        (&["run", "imagenet", "--set", "stage.3.views=[]"], "`views` applies only to op = \"views\""),
        (
            &["run", "default", "--set", "stage.0.max_failure_rate=5"],
            "max_failure_rate must be a fraction strictly between 0 and 1",
        ),
    ];
    for (args, expect) in cases {
        let out = shardpipe(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn outputs_that_cannot_be_written_fail_before_the_run() {
    let dir = temp_dir("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    // Nothing can be created under a regular file, whoever runs the test.
    let under_file = file.join("out");
    let plot = dir.join("plot.svg");
    let cases: [(&[&str], &str); 5] = [
        (&["--hgrm", under_file.to_str().unwrap()], "cannot make the directory"),
        (&["--plot", under_file.to_str().unwrap()], "cannot write it"),
        (&["--trace", under_file.to_str().unwrap()], "cannot write it"),
        (&["--hgrm", file.to_str().unwrap()], "is a file; name a directory"),
        (&["--plot", dir.to_str().unwrap()], "is a directory; name the file"),
    ];
    for (command, plan) in [("run", "tiny-tasks"), ("compare", "tiny-tasks")] {
        for (flags, expect) in &cases {
            // A writable --plot beside the bad output: the check must not leave it behind.
            let mut args = vec![command, plan, "--items", "2000"];
            args.extend_from_slice(flags);
            if flags[0] != "--plot" {
                args.extend_from_slice(&["--plot", plot.to_str().unwrap()]);
            }
            let out = shardpipe(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(flags[0]) && err.contains(expect), "{args:?}: {err}");
            assert!(
                out.stdout.is_empty(),
                "{args:?}: the run must not start: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(!plot.exists(), "{args:?}: the check left {} behind", plot.display());
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "an existing file is left as it was");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_plan_file_names_the_file_and_the_line() {
    let dir = std::env::temp_dir().join(format!("shardpipe-bad-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(&file, "description = \"x\"\n[source\ncount = 3\n").unwrap();
    let out = shardpipe(&["run", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.toml") && err.contains("line 2"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts an endless run, sends `signals` (one `kill` each, 100 ms apart) after 700 ms, and
/// returns its exit code, stdout and stderr.
fn signalled(args: &[&str], signals: &[&str]) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_shardpipe"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    std::thread::sleep(std::time::Duration::from_millis(700));
    for sig in signals {
        let status = Command::new("kill").args([*sig, &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn ctrl_c_stops_the_run_and_prints_the_partial_report() {
    let (code, text, err) = signalled(&["run", "tiny-tasks", "--set", "source.count=0"], &["-INT"]);
    assert_eq!(code, Some(130), "{err}");
    assert!(text.contains("account: produced") && !text.contains("DOES NOT BALANCE"), "{text}");
    assert!(err.contains("interrupted"), "{err}");
}

#[test]
fn sigterm_drains_reports_and_exits_143() {
    // An image run: in-flight reads and decodes drain, and the account still balances.
    let dir = temp_dir("sigterm-images");
    let images = format!("source.images={}", dir.display());
    let args = ["run", "imagenet", "--set", &images, "--set", "source.generate.files=60", "--duration", "1m"];
    let (code, text, err) = signalled(&args, &["-TERM"]);
    assert_eq!(code, Some(143), "{err}");
    assert!(text.contains("account: produced") && !text.contains("DOES NOT BALANCE"), "{text}");
    assert!(err.contains("terminated (SIGTERM)"), "{err}");
}

#[test]
fn a_second_signal_exits_at_once() {
    // Every decode spins for 30 s, so the drain after the first signal cannot finish before the
    // second arrives: the process ends then, without waiting for it (and without a report).
    let args = ["run", "default", "--set", "stage.1.us=30000000", "--set", "source.count=0"];
    let (code, text, _) = signalled(&args, &["-INT", "-INT"]);
    assert_eq!(code, Some(130));
    assert!(!text.contains("account: produced"), "it did not wait for the drain: {text}");
}

#[test]
fn plot_draws_one_percentile_curve_per_run() {
    let file = std::env::temp_dir().join(format!("shardpipe-plot-{}.svg", std::process::id()));
    let out =
        shardpipe(&["compare", "tiny-tasks", "--items", "5000", "--repeat", "1", "--plot", file.to_str().unwrap()]);
    if String::from_utf8_lossy(&out.stderr).contains("io_uring") {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&file).expect("the plot");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2, "single and sharded");
    assert!(svg.contains("99.9%") && svg.contains("single #1") && svg.contains("sharded #1"));
    let _ = std::fs::remove_file(file);
}

#[test]
fn trace_is_a_chrome_trace_with_a_track_per_shard_and_offload_thread() {
    let file = std::env::temp_dir().join(format!("shardpipe-trace-{}.json", std::process::id()));
    let out =
        shardpipe(&["compare", "cpu-bound", "--items", "400", "--repeat", "1", "--trace", file.to_str().unwrap()]);
    if String::from_utf8_lossy(&out.stderr).contains("io_uring") {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("valid JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    let names = |pid: u64| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["pid"] == pid && e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let single = names(1);
    assert!(single.contains(&"shard-0".to_owned()) && single.iter().any(|n| n.starts_with("offload-")), "{single:?}");
    assert!(names(2).len() >= 2, "a track per shard: {:?}", names(2));
    for e in events.iter().filter(|e| e["ph"] == "X") {
        assert!(e["ts"].is_number() && e["dur"].as_f64().unwrap() >= 0.0 && e["tid"].is_u64(), "{e}");
    }
    let has = |pid: u64, name: &str| events.iter().any(|e| e["pid"] == pid && e["name"] == name);
    assert!(has(1, "tasks") && has(1, "job") && has(2, "tasks"), "task turns and offloaded jobs are there");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_glob_source_reads_the_files_it_matches() {
    let dir = std::env::temp_dir().join(format!("shardpipe-glob-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["a1.bin", "a2.bin", "b1.bin", "a3.txt"] {
        std::fs::write(dir.join(name), b"data").unwrap();
    }
    let plan = dir.join("plan.toml");
    let glob = dir.join("a?.bin");
    std::fs::write(
        &plan,
        format!("description = \"g\"\n[source]\nglob = {:?}\n[[stage]]\nop = \"read\"\n", glob.to_str().unwrap()),
    )
    .unwrap();
    let Some(v) = json(&["run", plan.to_str().unwrap(), "--json"]) else { return };
    assert_eq!(v["runs"][0]["items"], 2, "a1.bin and a2.bin");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the binary with `RLIMIT_NOFILE` lowered to `limit`.
fn with_fd_limit(limit: u64, args: &[&str]) -> Output {
    with_limit(libc::RLIMIT_NOFILE, limit, args)
}

#[test]
fn no_locked_memory_at_all_still_runs_and_says_which_driver() {
    // shardpipe registers no buffers, and rings are charged to the memory cgroup on kernels since
    // 5.12; where a ring still needs locked memory, setup fails and the fallback takes over.
    let out = with_limit(libc::RLIMIT_MEMLOCK, 0, &["run", "tiny-tasks", "--items", "1000", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let driver = v["runs"][0]["driver"].as_str().unwrap();
    let forced = std::env::var("SHARDPIPE_DRIVER").is_ok_and(|d| d == "fallback");
    let said = err.contains("using the fallback driver");
    assert!(driver.starts_with("io_uring") || (driver.starts_with("fallback") && (forced || said)), "{driver}: {err}");
    assert_eq!(v["runs"][0]["items"], 1000);
}

/// Runs the binary with one resource limit lowered.
fn with_limit(resource: libc::__rlimit_resource_t, limit: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardpipe"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit is async-signal-safe and reads only `rl`, copied into the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(resource, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.output().expect("the binary runs")
}

#[test]
fn a_low_open_file_limit_slows_reads_down_instead_of_failing_files() {
    let dir = temp_dir("fd-limit");
    let set_dir = format!("source.dir={}", dir.display());
    let base = ["run", "io-bound", "--set", &set_dir, "--set", "source.generate.files=2000", "--set"];
    // Reads in flight (16) stay well under 64 descriptors: every file is read.
    let mut args = base.to_vec();
    args.extend(["source.generate.file_kib=1", "--set", "source.epochs=1", "--json"]);
    let out = with_fd_limit(64, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["runs"][0]["items"].as_u64(), v["runs"][0]["failed"].as_u64()), (Some(2000), Some(0)));
    // 500 reads in flight cannot all have a descriptor: a read that finds none waits for one
    // (up to 10 s) instead of failing, so every file is still read, and the run ends.
    args.extend(["--set", "stage.0.concurrency=500"]);
    let out = with_fd_limit(64, &args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert!(run["account"]["balances"].as_bool().unwrap(), "{run}");
    assert_eq!((run["items"].as_u64(), run["failed"].as_u64()), (Some(2000), Some(0)), "{run}");
}

#[test]
fn profile_runs_every_stage_of_a_plan_alone_and_refuses_zero_items() {
    let Some(v) = json(&["profile", "default", "--items-per-level", "40", "--json"]) else { return };
    let stages = v["stages"].as_array().expect("stages");
    assert_eq!(stages[0]["name"], "source");
    assert_eq!(stages[0]["levels"][0]["items"], 200, "five levels of 40");
    let read = stages.iter().find(|s| s["name"] == "read").expect("the default plan's read stage");
    let levels: Vec<u64> =
        read["levels"].as_array().unwrap().iter().map(|l| l["concurrency"].as_u64().unwrap()).collect();
    assert_eq!(levels, [32, 16, 8, 4, 1]);
    assert!(read["best_concurrency"].is_u64());
    assert!(v["bottleneck"]["stage"].is_string() && v["bottleneck"]["source_items_per_sec"].is_f64(), "{v}");
    let out = shardpipe(&["profile", "default", "--items-per-level", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("items_per_level must be at least 1"));
}

#[test]
fn a_route_plan_sends_each_item_down_one_path_in_its_weights() {
    for mode in ["single", "sharded"] {
        let Some(v) = json(&["run", "cache-routing", "--items", "4000", "--mode", mode, "--json"]) else { return };
        let stages = v["runs"][0]["stages"].as_array().expect("stages");
        let received = |name: &str| {
            let s = stages.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name}"));
            s["received"].as_u64().unwrap()
        };
        assert_eq!(received("cache"), 4000);
        let (hits, misses) = (received("path0/from_cache"), received("path1/read"));
        assert_eq!(hits + misses, 4000, "{mode}");
        // weights = [1, 3]: a hash picks the path, so about a quarter are hits.
        assert!((800..1200).contains(&hits), "{mode}: {hits} hits of 4000");
        assert_eq!(received("path1/decode"), misses);
        assert_eq!(v["runs"][0]["account"]["balances"], true);
    }
}

/// A stage's counter from a run's `--json` report.
fn stage_count(v: &serde_json::Value, name: &str, counter: &str) -> u64 {
    let stages = v["runs"][0]["stages"].as_array().expect("stages");
    let s = stages.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name} in {v}"));
    s[counter].as_u64().unwrap()
}

#[test]
fn a_batched_route_splits_each_batch_the_way_a_route_splits_items() {
    let Some(items) = json(&["run", "cache-routing", "--items", "4000", "--json"]) else { return };
    let hits = stage_count(&items, "path0/from_cache", "received");
    for mode in ["single", "sharded"] {
        let Some(v) = json(&["run", "batched-routing", "--items", "4000", "--mode", mode, "--json"]) else { return };
        // 125 batches of 32 reach the router; each path gets at most one sub-batch of each.
        assert_eq!(stage_count(&v, "cache", "received"), 125, "{mode}");
        let sub_batches = stage_count(&v, "path0/hits", "received") + stage_count(&v, "path1/fetch", "received");
        assert!((126..=250).contains(&sub_batches), "{mode}: {sub_batches} sub-batches");
        // The same hash picks the same items as the unbatched route does.
        let (batched_hits, misses) =
            (stage_count(&v, "path0/hits", "emitted"), stage_count(&v, "path1/decode", "received"));
        assert_eq!((batched_hits, misses), (hits, 4000 - hits), "{mode}");
        assert_eq!(stage_count(&v, "checksum3", "received"), 4000, "{mode}");
        assert_eq!(v["runs"][0]["account"]["balances"], true, "{mode}");
        assert_eq!(v["runs"][0]["account"]["delivered"], 4000, "{mode}");
    }
    // `profile` runs the router in place and each path's stages on what it routed there.
    let Some(p) = json(&["profile", "batched-routing", "--items-per-level", "64", "--json"]) else { return };
    let names: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in ["cache.unwrap", "cache", "path0/hits", "path1/fetch", "path1/decode", "checksum3"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
}

#[test]
fn a_batched_route_without_batches_is_refused_naming_the_fix() {
    let out = shardpipe(&["run", "cache-routing", "--set", "stage.0.batched=true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batched = true routes the items inside batches, but gets integers"), "{err}");
    assert!(err.contains("put a `batch` stage before it"), "{err}");
    let out = shardpipe(&["run", "default", "--set", "stage.3.batched=true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`paths/weights/batched` applies only to op = \"route\""));
}
