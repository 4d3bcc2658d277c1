//! `shardpipe`: runs shard plans (TOML pipeline descriptions) on one event loop or on every
//! core, compares the two, and writes reports that other tools read.
//!
//! Errors in what the user gave (a plan, a flag) print one line and exit with code 2; a run that
//! hit a failure limit prints its report and exits with code 1.

mod augment_spec;
mod batch_spec;
mod bench;
mod chain;
mod ops;
mod output;
mod plan;
mod plot;
mod view_spec;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use shardpipe::pipeline::{PipelineBuildError, RecvTimeoutError, Report};
use shardpipe::runtime::{MemorySettingError, retain_freed_memory};

use crate::output::Run;
use crate::plan::{Mode, Plan, PlanText};

/// Run data-loading pipelines on one event loop or on every core, and compare the two.
///
/// A plan (a TOML file; see docs/plans.md) describes a source, stages from the op catalog
/// (noop, spin, sleep, read, checksum, batch, unbatch, decode, resize, views, normalize, mixup,
/// erase, route) and a placement. With no command, `shardpipe` compares the embedded default
/// plan on one loop and on every core.
#[derive(Parser)]
#[command(name = "shardpipe", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plan once (on the placement it names, or --mode) and print its report.
    ///
    /// Example: shardpipe run tiny-tasks --mode single --set source.count=100000
    Run(RunArgs),
    /// Run a plan on the single loop and sharded, alternating, and print them side by side.
    ///
    /// Each mode runs --repeat times, alternating (single, sharded, single, …) so that a noisy
    /// machine slows both alike; the table shows medians and the sharded/single ratio.
    Compare(CompareArgs),
    /// Run every stage of a plan alone at concurrencies 32, 16, 8, 4, 1 (SPDL's profiling mode)
    /// and print each one's throughput, to find the stage that limits the pipeline.
    ///
    /// Example: shardpipe profile imagenet --items-per-level 200
    Profile(ProfileArgs),
    /// List the plans: those in ./shards and those built into the binary.
    Plans,
    /// Measure the runtime on this machine in seconds: hand-off, ping-pong, spawn.
    Bench,
    /// Write a deterministic ImageNet-like JPEG (or PNG, WebP, GIF, BMP, TIFF) set (for the image plans, tests and benches).
    ///
    /// Images are 300–500 × 250–400, quality 90, 4:2:0, with textured shapes, noise and grain
    /// so decoding costs what a photo does; the same --seed always gives the same files.
    /// Example: shardpipe gen-images /tmp/images --count 1024 --seed 1
    GenImages(GenImagesArgs),
}

#[derive(Args)]
struct GenImagesArgs {
    /// Where to write them (made if missing): DIR/class-CCC/img-IIIIII.jpg (or .png, .webp, .gif, .bmp, .tif).
    dir: PathBuf,
    /// How many images.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    count: u64,
    /// Which set: the same seed gives the same images.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Classes (sub-directories; image i goes to class i mod K); 0: every image at the top.
    #[arg(long, default_value_t = 10, value_name = "K")]
    classes: u32,
    /// The encoding: jpeg (quality 90, 4:2:0, like ImageNet), or the same pixels as png or
    /// webp (both lossless), gif (reduced to 256 colours), bmp (24-bit) or tiff (both uncompressed).
    #[arg(long, value_enum, default_value_t = plan::Encoding::Jpeg)]
    format: plan::Encoding,
}

#[derive(Args)]
struct PlanArgs {
    /// A plan: a path to a .toml file, or a name from `shardpipe plans` (e.g. default).
    plan: String,
    /// Override any plan key by its dotted path; repeatable.
    /// Lists take an index: --set stage.0.us=50 --set source.count=1000
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Open loop: emit this many items per second on a fixed schedule; latency counts from each
    /// item's scheduled time, so stalls are not hidden (the source's `rate` key).
    #[arg(long, value_name = "ITEMS_PER_SEC")]
    rate: Option<f64>,
    /// Stop after this many source items (the source's `count`, or the first N files).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    items: Option<u64>,
    /// Run for this long (e.g. 10s, 500ms, 2m), then stop; the source is endless.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Print one JSON object on stdout instead of tables (schema in docs/plans.md).
    #[arg(long)]
    json: bool,
    /// Write each run's end-to-end latency as an HdrHistogram .hgrm file into this directory.
    #[arg(long, value_name = "DIR")]
    hgrm: Option<PathBuf>,
    /// Draw every run's latency percentile curve (and shard utilization) into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Write a Chrome trace (open it in Perfetto): per run, one track per shard and offload
    /// thread with its task turns, idle periods, wakes sent and offloaded jobs.
    #[arg(long, value_name = "FILE.json")]
    trace: Option<PathBuf>,
}

#[derive(Args)]
struct ProfileArgs {
    /// A plan: a path to a .toml file, or a name from `shardpipe plans`.
    plan: String,
    /// Override any plan key by its dotted path; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Where to run the stages (default: the plan's placement.mode).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Inputs each stage gets per concurrency level (the source makes five times this many).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    items_per_level: usize,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Where to run it (default: the plan's placement.mode).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Runs of each mode.
    #[arg(long, default_value_t = 3, value_name = "N")]
    repeat: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Single,
    Sharded,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| c.is_alphabetic()).unwrap_or(s.trim().len()));
    let n: f64 = num.parse().map_err(|_| format!("'{s}': expected a number and a unit, e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}'; use ms, s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("'{s}': the duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A failure that is the user's to fix (exit 2), a run that failed (exit 1), or a run the user
/// interrupted (exit 130 for SIGINT, 143 for SIGTERM).
enum Failure {
    User(String),
    Run(String),
    Interrupted,
}

/// Set by the first Ctrl-C (or SIGTERM): the run stops, drains and reports what it did. A
/// second one ends the process at once, with the same code (130 for SIGINT, 143 for SIGTERM).
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration fails only for forbidden signals, which these are not; without it
            // Ctrl-C simply ends the process as usual. Registered first, the conditional exit
            // sees the flag still false on the first signal.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone());
            let _ = signal_hook::flag::register_usize(sig, stop_signal().clone(), sig as usize);
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
}

/// The signal that stopped the run (0: none).
fn stop_signal() -> &'static Arc<AtomicUsize> {
    static SIG: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();
    SIG.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::User(s)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupted();
    // Image plans free a decoded and a resized image per item on every shard: keep that memory
    // in the process (docs/data-loading.md). `GLIBC_TUNABLES` with malloc settings overrides it.
    if let Err(e @ MemorySettingError::Refused { .. }) = retain_freed_memory() {
        eprintln!("shardpipe: note: {e}");
    }
    let result = match cli.command {
        None => default_compare(),
        Some(Command::Run(a)) => run_command(&a),
        Some(Command::Compare(a)) => compare_command(&a.plan, a.repeat, None),
        Some(Command::Profile(a)) => profile_command(&a),
        Some(Command::Plans) => list_plans(),
        Some(Command::Bench) => bench::run().map_err(|e| Failure::User(e.to_string())),
        Some(Command::GenImages(a)) => gen_images(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User(msg)) => {
            eprintln!("shardpipe: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("shardpipe: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Interrupted) => {
            let sig = stop_signal().load(Ordering::Relaxed);
            let name =
                if sig == signal_hook::consts::SIGTERM as usize { "terminated (SIGTERM)" } else { "interrupted" };
            eprintln!("shardpipe: {name}; the report above covers what ran until then");
            // The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
            ExitCode::from(u8::try_from(128 + sig.max(2)).unwrap_or(130))
        }
    }
}

/// The plan with the command line's overrides applied.
fn load(args: &PlanArgs) -> Result<(PlanText, Plan), Failure> {
    load_with(&args.plan, &args.set, args.rate)
}

fn load_with(name: &str, set: &[String], rate: Option<f64>) -> Result<(PlanText, Plan), Failure> {
    let text = plan::find(name).map_err(|e| e.to_string())?;
    let mut overrides = set.to_vec();
    if let Some(rate) = rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--rate {rate}: the rate must be a positive number of items per second").into());
        }
        overrides.push(format!("source.rate={rate}"));
    }
    let plan = plan::load(&text, &overrides).map_err(|e| e.to_string())?;
    Ok((text, plan))
}

/// Runs `plan` once on `mode`; `progress` shows a live bar on a terminal.
fn run_once(plan: &Plan, mode: Mode, args: &PlanArgs, progress: bool) -> Result<(Report, Option<String>), Failure> {
    let items = if args.duration.is_some() { Some(0) } else { args.items };
    let builder = ops::pipeline(plan, items)?;
    let builder = if args.trace.is_some() { builder.trace() } else { builder };
    let mut pipe = builder.build(ops::placement(plan, mode)).map_err(|e| match e {
        // The library's message names a builder call; a plan user needs the key.
        PipelineBuildError::Runtime(shardpipe::BuildError::TooManyShards { asked, cpus }) => Failure::User(format!(
            "placement.shards = {asked}, but this process may run on only {cpus} CPUs; set it to {cpus} or less (0: one per CPU)"
        )),
        other => Failure::User(other.to_string()),
    })?;
    let expected = items.filter(|&n| n > 0).or(plan.source.count).map(|n| n * plan.source.epochs);
    let bar = progress.then(|| progress_bar(expected, mode));
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut error = None;
    let mut shown = (Instant::now(), pipe.shard_usage());
    loop {
        let now = Instant::now();
        if let Some(b) = &bar
            && now - shown.0 >= Duration::from_millis(250)
        {
            // Each shard's busy share since the last update: where the time goes right now.
            let usage = pipe.shard_usage();
            let busy: Vec<String> = usage
                .iter()
                .zip(&shown.1)
                .map(|(now, then)| format!("{:.0}%", 100.0 * now.since(then).utilization()))
                .collect();
            b.set_message(format!(", shards busy {}", busy.join(" ")));
            shown = (now, usage);
        }
        if deadline.is_some_and(|d| now >= d) || interrupted().load(Ordering::Relaxed) {
            pipe.stop();
            break;
        }
        let wait = deadline.map_or(Duration::from_millis(250), |d| (d - now).min(Duration::from_millis(250)));
        match pipe.recv_timeout(wait) {
            Ok(v) => {
                if let Some(b) = &bar {
                    b.inc(v.items());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Ended) => break,
            Err(RecvTimeoutError::Failed(e)) => error = Some(e.to_string()),
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match pipe.finish() {
        Ok(r) => Ok((r, error)),
        Err(failed) => Ok((*failed.report, Some(failed.error.to_string()))),
    }
}

fn progress_bar(expected: Option<u64>, mode: Mode) -> indicatif::ProgressBar {
    let label = if mode == Mode::Single { "single " } else { "sharded" };
    let bar = match expected {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = format!("{label} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} items, {{per_sec}}{{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

fn mode_label(mode: Mode) -> &'static str {
    if mode == Mode::Single { "single" } else { "sharded" }
}

/// Fails before the first run if an output file or directory named on the command line cannot be
/// written.
fn check_destinations(args: &PlanArgs) -> Result<(), Failure> {
    let files = [("--plot", args.plot.as_deref()), ("--trace", args.trace.as_deref())];
    Ok(output::check_destinations(args.hgrm.as_deref(), &files)?)
}

/// Prints (or writes) what the runs produced.
fn emit(name: &str, runs: &[Run], args: &PlanArgs) -> Result<(), Failure> {
    if let Some(dir) = &args.hgrm {
        let paths = output::write_hgrm(dir, name, runs)?;
        if !args.json {
            for p in paths {
                println!("wrote {}", p.display());
            }
        }
    }
    if let Some(file) = &args.plot {
        std::fs::write(file, plot::svg(name, runs))
            .map_err(|e| format!("--plot {}: cannot write it: {e}", file.display()))?;
        if !args.json {
            println!("wrote {}", file.display());
        }
    }
    if let Some(file) = &args.trace {
        let groups: Vec<_> =
            runs.iter().map(|r| (format!("{} #{}", r.mode, r.repeat), r.report.trace.clone())).collect();
        std::fs::write(file, shardpipe::trace::chrome_json(&groups))
            .map_err(|e| format!("--trace {}: cannot write it: {e}", file.display()))?;
        if !args.json {
            println!("wrote {} (open it in https://ui.perfetto.dev)", file.display());
        }
    }
    if args.json {
        println!("{}", output::json(name, runs));
    }
    Ok(())
}

/// `--mode`, else the plan's.
fn mode_of(arg: Option<ModeArg>, plan: &Plan) -> Mode {
    match arg {
        Some(ModeArg::Single) => Mode::Single,
        Some(ModeArg::Sharded) => Mode::Sharded,
        None => plan.placement.mode,
    }
}

fn profile_command(a: &ProfileArgs) -> Result<(), Failure> {
    let (text, plan) = load_with(&a.plan, &a.set, None)?;
    let mode = mode_of(a.mode, &plan);
    if !a.json {
        eprintln!(
            "profiling {} on {}: each stage alone, {} inputs per level …",
            text.name,
            mode_label(mode),
            a.items_per_level
        );
    }
    let profile = ops::pipeline(&plan, None)?
        .profile(a.items_per_level, ops::placement(&plan, mode))
        .map_err(|e| Failure::User(e.to_string()))?;
    if a.json {
        println!("{}", output::profile_json(&text.name, &profile));
    } else {
        println!("{} — {}\n{profile}", text.name, plan.description);
    }
    Ok(())
}

fn run_command(a: &RunArgs) -> Result<(), Failure> {
    let (text, plan) = load(&a.plan)?;
    check_destinations(&a.plan)?;
    let mode = mode_of(a.mode, &plan);
    let (report, error) = run_once(&plan, mode, &a.plan, !a.plan.json)?;
    if !a.plan.json {
        println!("{} — {}\n{report}", text.name, plan.description);
    }
    let runs = [Run { mode: mode_label(mode), repeat: 1, report }];
    emit(&text.name, &runs, &a.plan)?;
    if interrupted().load(Ordering::Relaxed) {
        return Err(Failure::Interrupted);
    }
    error.map_or(Ok(()), |e| Err(Failure::Run(e)))
}

fn compare_command(args: &PlanArgs, repeat: usize, report_dir: Option<PathBuf>) -> Result<(), Failure> {
    if repeat == 0 {
        return Err("--repeat 0: compare needs at least one run of each mode".to_owned().into());
    }
    let (text, plan) = load(args)?;
    check_destinations(args)?;
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    'runs: for k in 1..=repeat {
        for mode in [Mode::Single, Mode::Sharded] {
            let (report, error) = run_once(&plan, mode, args, !args.json)?;
            errors.extend(error);
            runs.push(Run { mode: mode_label(mode), repeat: k, report });
            if interrupted().load(Ordering::Relaxed) {
                break 'runs;
            }
        }
    }
    if !args.json {
        println!("{} — {}", text.name, plan.description);
        println!("{} run(s) of each, alternating; medians:\n", repeat);
        print!("{}", output::comparison(&runs));
        if let Some(last) = runs.iter().rev().find(|r| r.mode == "sharded") {
            println!("\nlast sharded run:\n{}", last.report);
        }
    }
    emit(&text.name, &runs, args)?;
    if let Some(dir) = report_dir {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let json = dir.join(format!("{}.json", text.name));
        std::fs::write(&json, output::json(&text.name, &runs).to_string())
            .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
        let hgrms = output::write_hgrm(&dir, &text.name, &runs)?;
        println!("reports: {} and {} .hgrm files in {}", json.display(), hgrms.len(), dir.display());
    }
    if interrupted().load(Ordering::Relaxed) {
        return Err(Failure::Interrupted);
    }
    match errors.first() {
        Some(e) => Err(Failure::Run(e.clone())),
        None => Ok(()),
    }
}

/// No arguments: `compare` on the embedded default plan, reports written to a temporary directory.
fn default_compare() -> Result<(), Failure> {
    let args = PlanArgs {
        plan: "default".into(),
        set: Vec::new(),
        rate: None,
        items: None,
        duration: None,
        json: false,
        hgrm: None,
        plot: None,
        trace: None,
    };
    let dir = std::env::temp_dir().join("shardpipe-reports");
    compare_command(&args, 3, Some(dir))
}

fn gen_images(a: &GenImagesArgs) -> Result<(), Failure> {
    if a.count == 0 {
        return Err("--count 0: nothing to write; give the number of images to make".to_owned().into());
    }
    let t = Instant::now();
    let format = a.format.format();
    let paths = shardpipe::images::synth::write_set_as(format, &a.dir, a.count, a.seed, a.classes)
        .map_err(|e| e.to_string())?;
    let bytes: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    println!(
        "wrote {} {format} images ({:.1} MB, {:.0} KB each on average, {} classes, seed {}) to {} in {:.1} s",
        paths.len(),
        bytes as f64 / 1e6,
        bytes as f64 / paths.len() as f64 / 1e3,
        a.classes,
        a.seed,
        a.dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn list_plans() -> Result<(), Failure> {
    let mut seen = Vec::new();
    if let Ok(entries) = std::fs::read_dir("shards") {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let line = match plan::find(&p.display().to_string()).and_then(|t| plan::load(&t, &[])) {
                Ok(plan) => plan.description,
                Err(e) => format!("(does not load: {e})"),
            };
            println!("{name:<14} {line}  [{}]", p.display());
            seen.push(name);
        }
    }
    for (name, text) in plan::EMBEDDED {
        if seen.iter().any(|s| s == name) {
            continue;
        }
        let t = PlanText { origin: format!("<embedded {name}>"), name: (*name).to_owned(), text: (*text).to_owned() };
        let line = plan::load(&t, &[]).map(|p| p.description).unwrap_or_else(|e| e.to_string());
        println!("{name:<14} {line}  [built in]");
    }
    Ok(())
}
