//! The op catalog: turns a checked [`Plan`] into a pipeline of [`Value`]s on a placement.
//!
//! Every op takes and gives a `Value`, so the chain is built in a loop; the plan check has
//! already made sure each op gets the kind of value it works on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpipe::pipeline::{PipelineBuilder, Placement, source, source_epochs};

use crate::plan::{Mode, Op, Plan};

/// What flows through a plan's pipeline.
#[derive(Debug, Clone)]
pub enum Value {
    Int(u64),
    Path(Arc<Path>),
    Bytes(Vec<u8>),
    Sum(u64),
    Batch(Vec<Value>),
}

impl Value {
    /// Source items this value holds (a batch holds many).
    pub fn items(&self) -> u64 {
        match self {
            Value::Batch(b) => b.iter().map(Value::items).sum(),
            _ => 1,
        }
    }
}

/// Burns `d` of CPU on the calling thread.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// FNV-1a over bytes, or a mix of an integer: cheap and order-sensitive.
fn checksum(v: &Value) -> u64 {
    match v {
        Value::Bytes(b) => {
            b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
        }
        Value::Int(x) => x.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        Value::Sum(s) => *s,
        Value::Path(_) | Value::Batch(_) => 0,
    }
}

/// The placement a plan's mode asks for.
pub fn placement(plan: &Plan, mode: Mode) -> Placement {
    match mode {
        Mode::Single => Placement::SingleLoop { offload_threads: plan.placement.offload_threads },
        Mode::Sharded => Placement::Sharded { shards: plan.placement.shards },
    }
}

/// `{tmp}/x` is `x` under the system's temporary directory.
pub fn resolve_dir(dir: &Path) -> PathBuf {
    match dir.to_str().and_then(|s| s.strip_prefix("{tmp}/")) {
        Some(rest) => std::env::temp_dir().join(rest),
        None => dir.to_path_buf(),
    }
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one character).
fn matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..])),
        (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The files a `glob` source names, sorted.
fn glob_files(glob: &str) -> Result<Vec<Arc<Path>>, String> {
    let full = resolve_dir(Path::new(glob));
    let dir = full.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let pattern: Vec<char> = full.file_name().map(|n| n.to_string_lossy().chars().collect()).unwrap_or_default();
    let mut v: Vec<Arc<Path>> = std::fs::read_dir(dir)
        .map_err(|e| format!("[source] glob = \"{glob}\": {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().is_some_and(|n| matches(&pattern, &n.to_string_lossy().chars().collect::<Vec<_>>())))
        .map(Arc::from)
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(format!("[source] glob = \"{glob}\" matches no file"));
    }
    Ok(v)
}

/// The regular files in `dir` (made first when the plan says how and there are none), or those
/// `glob` matches; sorted.
pub fn files(plan: &Plan) -> Result<Vec<Arc<Path>>, String> {
    if let Some(glob) = &plan.source.glob {
        return glob_files(glob);
    }
    let dir = resolve_dir(plan.source.dir.as_deref().expect("checked: a dir source"));
    let list = |dir: &Path| -> Result<Vec<Arc<Path>>, String> {
        let mut v: Vec<Arc<Path>> = std::fs::read_dir(dir)
            .map_err(|e| format!("[source] dir {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .map(Arc::from)
            .collect();
        v.sort();
        Ok(v)
    };
    if let Some(g) = &plan.source.generate
        && (!dir.is_dir() || list(&dir)?.is_empty())
    {
        std::fs::create_dir_all(&dir).map_err(|e| format!("[source] cannot make {}: {e}", dir.display()))?;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..g.files {
            let data: Vec<u8> = (0..g.file_kib * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let path = dir.join(format!("file-{i:05}.bin"));
            std::fs::write(&path, data).map_err(|e| format!("[source] cannot write {}: {e}", path.display()))?;
        }
    }
    let files = list(&dir)?;
    if files.is_empty() {
        return Err(format!(
            "[source] dir {} has no files; add some or a `generate = {{ files, file_kib }}` line",
            dir.display()
        ));
    }
    Ok(files)
}

/// The source of a plan: `items` overrides the count (0: endless, for `--duration`).
fn plan_source(plan: &Plan, items: Option<u64>) -> Result<PipelineBuilder<Value>, String> {
    let epochs = plan.source.epochs;
    let builder = if plan.source.dir.is_some() || plan.source.glob.is_some() {
        let files = files(plan)?;
        let limit = items.map_or(files.len(), |n| (n as usize).min(files.len()));
        let files: Arc<[Arc<Path>]> = files[..limit].into();
        source_epochs(move |e| (e < epochs).then(|| files.clone().to_vec().into_iter().map(Value::Path)))
    } else {
        let count = items.or(plan.source.count).unwrap_or(0);
        let end = if count == 0 { u64::MAX } else { count };
        if epochs == 1 {
            source((0..end).map(Value::Int))
        } else {
            source_epochs(move |e| (e < epochs).then(|| (0..end).map(Value::Int)))
        }
    };
    let rate = plan.source.rate;
    Ok(if rate > 0.0 { builder.rate(rate) } else { builder })
}

/// Builds the plan's pipeline (not started).
pub fn pipeline(plan: &Plan, items: Option<u64>) -> Result<PipelineBuilder<Value>, String> {
    let mut b = plan_source(plan, items)?.buffer(1024);
    for (i, st) in plan.stages.iter().enumerate() {
        let us = Duration::from_micros(st.us.unwrap_or(0));
        b = match st.op {
            Op::Noop => b.pipe(Some),
            Op::Spin => b.pipe_blocking(move |v| {
                spin(us);
                Some(v)
            }),
            Op::Sleep => b.pipe_async(move |v| async move {
                shardpipe::time::sleep(us).await;
                Some(v)
            }),
            Op::Read => b.pipe_async(|v| async move {
                match v {
                    Value::Path(p) => {
                        shardpipe::io::read(&*p).await.map(Value::Bytes).map_err(|e| format!("{}: {e}", p.display()))
                    }
                    other => Err(format!("read expects a file path, got {other:?}")),
                }
            }),
            Op::Checksum => b.pipe(|v| Some(Value::Sum(checksum(&v)))),
            Op::Batch => {
                let agg = b.aggregate(st.size.expect("checked: a size"));
                let agg = if st.drop_last { agg.drop_last() } else { agg };
                let name = st.name.clone().unwrap_or_else(|| format!("batch{}", i + 1));
                let agg = options(agg, st, &name);
                agg.map(Value::Batch).name(format!("{name}.wrap"))
            }
            Op::Unbatch => b.pipe_iter(|v| match v {
                Value::Batch(items) => items,
                other => vec![other],
            }),
        };
        if st.op != Op::Batch {
            let name = st.name.clone().unwrap_or_else(|| format!("{}{}", crate::plan::op_name(st.op), i + 1));
            b = options(b, st, &name);
        }
    }
    Ok(b.sink(plan.sink.buffer))
}

/// A stage's options from the plan.
fn options<T: Send + 'static>(mut b: PipelineBuilder<T>, st: &crate::plan::Stage, name: &str) -> PipelineBuilder<T> {
    b = b.name(name);
    if let Some(c) = st.concurrency {
        b = b.concurrency(c);
    }
    if st.ordered {
        b = b.ordered();
    }
    if let Some(m) = st.max_failures {
        b = b.max_failures(m);
    }
    if let Some(s) = &st.shards {
        b = b.on_shards(s.iter().copied());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, n: &str) -> bool {
        matches(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>())
    }

    #[test]
    fn glob_patterns_match_names_as_shells_do() {
        assert!(m("*.bin", "file-00001.bin"));
        assert!(!m("*.bin", "file.binx"));
        assert!(m("file-?????.bin", "file-00001.bin"));
        assert!(!m("file-????.bin", "file-00001.bin"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "a-x-b-y-c"));
    }
}
