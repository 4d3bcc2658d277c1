//! What the command writes: the side-by-side comparison, the `--json` object, `.hgrm` files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use shardpipe::pipeline::{Profile, Report, fmt_ns};
use shardpipe::stats::Recorder;

/// One run of a plan.
pub struct Run {
    /// "single" or "sharded".
    pub mode: &'static str,
    /// 1-based repetition.
    pub repeat: usize,
    pub report: Report,
}

/// `profile --json`: every stage's levels (schema in docs/plans.md).
pub fn profile_json(plan: &str, profile: &Profile) -> serde_json::Value {
    let rates = profile.source_rates();
    let stages: Vec<_> = profile
        .stages
        .iter()
        .zip(&rates)
        .map(|(s, (_, rate))| {
            let levels: Vec<_> = s
                .levels
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "concurrency": l.concurrency, "items": l.items, "outputs": l.outputs,
                        "failures": l.failures, "seconds": l.elapsed.as_secs_f64(),
                        "items_per_sec": l.items_per_sec, "task_p50_ns": l.task_p50_ns,
                        "task_p99_ns": l.task_p99_ns, "occupancy": l.occupancy,
                    })
                })
                .collect();
            serde_json::json!({
                "name": s.name, "best_concurrency": s.best().map(|b| b.concurrency),
                "source_items_per_sec": rate, "levels": levels,
            })
        })
        .collect();
    let bottleneck =
        profile.bottleneck().map(|(stage, rate)| serde_json::json!({ "stage": stage, "source_items_per_sec": rate }));
    serde_json::json!({ "plan": plan, "placement": profile.placement, "stages": stages, "bottleneck": bottleneck })
}

/// The `--json` object (schema in docs/plans.md).
pub fn json(plan: &str, runs: &[Run]) -> serde_json::Value {
    let runs: Vec<_> = runs
        .iter()
        .map(|r| {
            let rep = &r.report;
            let l = &rep.latency;
            serde_json::json!({
                "mode": r.mode,
                "repeat": r.repeat,
                "shards": rep.shards,
                "driver": rep.driver,
                "clock": shardpipe::stats::clock_source().to_string(),
                "items": rep.account.delivered,
                "seconds": rep.elapsed.as_secs_f64(),
                "items_per_sec": rep.items_per_sec(),
                "failed": rep.account.failed,
                "filtered": rep.account.filtered,
                "account": {
                    "produced": rep.account.produced, "delivered": rep.account.delivered,
                    "failed": rep.account.failed, "filtered": rep.account.filtered,
                    "left_over": rep.account.left_over, "discarded": rep.account.discarded,
                    "balances": rep.account.balances(),
                },
                "latency_ns": {
                    "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "p9999": l.p9999, "max": l.max,
                    "mean": l.mean, "count": l.count,
                },
                "stages": rep.stages.iter().map(|s| {
                    let t = s.stats.task_time.summary();
                    serde_json::json!({
                        "name": s.name, "received": s.stats.received, "emitted": s.stats.emitted,
                        "failures": s.stats.failures, "filtered": s.stats.filtered,
                        "items_per_sec": s.items_per_sec,
                        "task_ns": {"p50": t.p50, "p90": t.p90, "p99": t.p99, "p999": t.p999, "max": t.max, "count": t.count},
                        "input_wait_s": s.stats.input_wait.as_secs_f64(),
                        "output_wait_s": s.stats.output_wait.as_secs_f64(),
                        "occupancy": s.stats.occupancy(),
                        "failure_samples": s.failure_samples,
                    })
                }).collect::<Vec<_>>(),
                "shards_util": rep.shard_usage.iter().map(|u| serde_json::json!({
                    "shard": u.id, "utilization": u.utilization(),
                    "busy_s": u.busy.as_secs_f64(), "idle_s": u.idle.as_secs_f64(), "task_polls": u.tasks_run,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "plan": plan, "runs": runs })
}

/// HdrHistogram's percentile distribution text (what `outputPercentileDistribution` prints and
/// its plotter reads), values in microseconds.
pub fn hgrm(rec: &Recorder) -> String {
    const SCALE: f64 = 1000.0; // ns → µs
    let mut out = format!("{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let Some(h) = rec.histogram().filter(|h| !h.is_empty()) else {
        out.push_str("#[Mean    =        0.000, StdDeviation   =        0.000]\n");
        out.push_str("#[Max     =        0.000, Total count    =            0]\n");
        out.push_str("#[Buckets =            0, SubBuckets     =            0]\n");
        return out;
    };
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / SCALE;
        let p = v.quantile_iterated_to();
        if p < 1.0 {
            let _ = writeln!(out, "{value:12.3} {p:2.12} {total:10} {:14.2}", 1.0 / (1.0 - p));
        } else {
            let _ = writeln!(out, "{value:12.3} {p:2.12} {total:10}");
        }
    }
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(out, "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]", h.mean() / SCALE, h.stdev() / SCALE);
    let _ = writeln!(out, "#[Max     = {:12.3}, Total count    = {:12}]", h.max() as f64 / SCALE, h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_buckets);
    out
}

/// Checks, before any run starts, that the outputs the command line names can be written, so a
/// long run never ends in "cannot write": makes the `--hgrm` directory and writes a probe file in
/// it, and opens each named file (`--plot`, `--trace`) for writing, removing it again if it did not
/// exist (an existing file keeps its contents until the run's output replaces them).
pub fn check_destinations(hgrm: Option<&Path>, files: &[(&str, Option<&Path>)]) -> Result<(), String> {
    if let Some(dir) = hgrm {
        if dir.exists() && !dir.is_dir() {
            return Err(format!("--hgrm {}: is a file; name a directory to write the .hgrm files into", dir.display()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--hgrm {}: cannot make the directory: {e}", dir.display()))?;
        let probe = dir.join(format!(".shardpipe-write-check-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| format!("--hgrm {}: cannot write files in it: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
    }
    for &(flag, file) in files {
        let Some(file) = file else { continue };
        if file.is_dir() {
            return Err(format!("{flag} {}: is a directory; name the file to write", file.display()));
        }
        let existed = file.exists();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .map_err(|e| format!("{flag} {}: cannot write it: {e}", file.display()))?;
        if !existed {
            let _ = std::fs::remove_file(file);
        }
    }
    Ok(())
}

/// Writes one `.hgrm` per run into `dir`; returns the paths.
pub fn write_hgrm(dir: &Path, plan: &str, runs: &[Run]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--hgrm {}: cannot make the directory: {e}", dir.display()))?;
    runs.iter()
        .map(|r| {
            let path = dir.join(format!("{plan}-{}-{}.hgrm", r.mode, r.repeat));
            std::fs::write(&path, hgrm(&r.report.latency_histogram))
                .map_err(|e| format!("--hgrm: cannot write {}: {e}", path.display()))?;
            Ok(path)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// The side-by-side table of `compare`: medians over the repetitions of each mode.
pub fn comparison(runs: &[Run]) -> String {
    let of = |mode: &str| runs.iter().filter(|r| r.mode == mode).map(|r| &r.report).collect::<Vec<_>>();
    let (single, sharded) = (of("single"), of("sharded"));
    let med = |rs: &[&Report], f: &dyn Fn(&Report) -> f64| median(rs.iter().map(|r| f(r)).collect());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>14} {:>14} {:>9}",
        "",
        format!("single ({})", single.first().map_or(0, |r| r.shards)),
        format!("sharded ({})", sharded.first().map_or(0, |r| r.shards)),
        "ratio"
    );
    let mut row = |name: &str, f: &dyn Fn(&Report) -> f64, ns: bool| {
        let (a, b) = (med(&single, f), med(&sharded, f));
        let show = |x: f64| if ns { fmt_ns(x as u64) } else { format!("{x:.0}") };
        let ratio = if a > 0.0 { format!("{:.2}x", b / a) } else { "-".into() };
        let _ = writeln!(out, "{name:<22} {:>14} {:>14} {ratio:>9}", show(a), show(b));
    };
    row("items/s", &|r| r.items_per_sec(), false);
    row("latency p50", &|r| r.latency.p50 as f64, true);
    row("latency p90", &|r| r.latency.p90 as f64, true);
    row("latency p99", &|r| r.latency.p99 as f64, true);
    row("latency p99.9", &|r| r.latency.p999 as f64, true);
    row("latency p99.99", &|r| r.latency.p9999 as f64, true);
    row("latency max", &|r| r.latency.max as f64, true);
    row("failed", &|r| r.account.failed as f64, false);
    row("filtered", &|r| r.account.filtered as f64, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_the_four_columns_rising_counts_and_the_footer() {
        let mut r = Recorder::new();
        (1..=1000u64).for_each(|v| r.record(v * 1000));
        let text = hgrm(&r);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]);
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect();
        assert!(rows.len() > 10);
        assert!(rows.windows(2).all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1] && w[0][2] <= w[1][2]));
        assert_eq!(rows.last().unwrap()[2], 1000.0, "the last row counts every value");
        assert_eq!(rows.last().unwrap()[1], 1.0);
        assert!(text.contains("#[Mean    =") && text.contains("Total count    =         1000]"), "{text}");
        assert!(text.contains("#[Buckets =") && text.contains("SubBuckets     =         2048]"), "{text}");
    }
}
