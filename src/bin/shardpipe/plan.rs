//! Shard plans: TOML descriptions of a pipeline (source, stages, placement) that the command runs.
//!
//! A plan is read as a TOML tree, `--set key.path=value` overrides are applied to the tree, and
//! only then is it checked against the schema (unknown keys refused), so an override is checked
//! exactly like the file. The schema is documented in docs/plans.md.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The plans shipped in `shards/`, embedded so the command works from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../../shards/default.toml")),
    ("cpu-bound", include_str!("../../../shards/cpu-bound.toml")),
    ("io-bound", include_str!("../../../shards/io-bound.toml")),
    ("tiny-tasks", include_str!("../../../shards/tiny-tasks.toml")),
    ("tail-latency", include_str!("../../../shards/tail-latency.toml")),
];

/// A plan file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// One line for `shardpipe plans`.
    pub description: String,
    pub source: Source,
    #[serde(default, rename = "stage")]
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub placement: PlacementSpec,
    #[serde(default)]
    pub sink: SinkSpec,
}

/// Where items come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Integers `0..count` (0 with `duration`: endless).
    pub count: Option<u64>,
    /// A directory of files (every regular file in it, sorted).
    pub dir: Option<PathBuf>,
    /// Files matching a pattern: `*` and `?` in the last part (`data/*.bin`), sorted.
    pub glob: Option<String>,
    /// Make `files` files of `file_kib` KiB in `dir` first if it has none.
    pub generate: Option<Generate>,
    /// Passes over the source (each ends with an epoch marker when more than one).
    #[serde(default = "one")]
    pub epochs: u64,
    /// Open loop: items per second (0 or absent: closed loop).
    #[serde(default)]
    pub rate: f64,
}

/// Files a plan makes for itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub files: u64,
    pub file_kib: u64,
}

fn one() -> u64 {
    1
}

/// One stage: an op from the catalog and its options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub op: Op,
    /// `spin`, `sleep`: microseconds per item.
    pub us: Option<u64>,
    /// `batch`: items per batch.
    pub size: Option<usize>,
    /// `batch`: drop the incomplete last batch.
    #[serde(default)]
    pub drop_last: bool,
    pub name: Option<String>,
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub ordered: bool,
    pub max_failures: Option<u64>,
    /// Run only on these shards.
    pub shards: Option<Vec<usize>>,
}

/// The op catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Noop,
    Spin,
    Sleep,
    Read,
    Checksum,
    Batch,
    Unbatch,
}

/// Where the plan runs (`compare` runs both modes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    #[serde(default = "sharded")]
    pub mode: Mode,
    /// Shards when sharded (0: one per CPU).
    #[serde(default)]
    pub shards: usize,
    /// Offload threads on a single loop (0: one per CPU).
    #[serde(default)]
    pub offload_threads: usize,
}

impl Default for PlacementSpec {
    fn default() -> Self {
        Self { mode: Mode::Sharded, shards: 0, offload_threads: 0 }
    }
}

fn sharded() -> Mode {
    Mode::Sharded
}

/// Single loop or sharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Single,
    Sharded,
}

/// The consumer's end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    #[serde(default = "three")]
    pub buffer: usize,
}

impl Default for SinkSpec {
    fn default() -> Self {
        Self { buffer: 3 }
    }
}

fn three() -> usize {
    3
}

/// Why a plan could not be used; `Display` is the one line the command prints.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan '{0}' not found: give a path to a .toml file or one of the plans `shardpipe plans` lists")]
    NotFound(String),
    #[error("{file}: cannot read it: {err}")]
    Read { file: String, err: std::io::Error },
    #[error("{file}: {msg}")]
    Syntax { file: String, msg: String },
    #[error("--set {arg}: expected KEY=VALUE with a dotted key, e.g. --set source.count=1000")]
    SetSyntax { arg: String },
    #[error("--set {arg}: {msg}")]
    SetPath { arg: String, msg: String },
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
}

/// A plan's text and where it came from (a path, or `<embedded NAME>`).
pub struct PlanText {
    pub origin: String,
    pub name: String,
    pub text: String,
}

/// Finds a plan by path, by name in `./shards/`, or among the embedded ones.
pub fn find(arg: &str) -> Result<PlanText, PlanError> {
    let path = Path::new(arg);
    let candidates = [path.to_path_buf(), Path::new("shards").join(format!("{arg}.toml"))];
    for p in candidates {
        if p.is_file() {
            let text =
                std::fs::read_to_string(&p).map_err(|err| PlanError::Read { file: p.display().to_string(), err })?;
            let name = p.file_stem().map_or_else(|| arg.to_owned(), |s| s.to_string_lossy().into_owned());
            return Ok(PlanText { origin: p.display().to_string(), name, text });
        }
    }
    let key = arg.trim_end_matches(".toml").rsplit('/').next().unwrap_or(arg);
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(n, t)| PlanText { origin: format!("<embedded {n}>"), name: (*n).to_owned(), text: (*t).to_owned() })
        .ok_or_else(|| PlanError::NotFound(arg.to_owned()))
}

/// Parses `text`, applies `overrides` (`key.path=value`), and checks the result.
pub fn load(plan: &PlanText, overrides: &[String]) -> Result<Plan, PlanError> {
    let file = plan.origin.clone();
    let mut tree: toml::Table = toml::from_str(&plan.text)
        .map_err(|e| PlanError::Syntax { file: file.clone(), msg: one_line(&e.to_string()) })?;
    for arg in overrides {
        apply_override(&mut tree, arg)?;
    }
    let plan: Plan = toml::Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| PlanError::Invalid { file: file.clone(), msg: one_line(&e.to_string()) })?;
    check(&plan).map_err(|msg| PlanError::Invalid { file, msg })?;
    Ok(plan)
}

/// TOML errors span several lines (a source excerpt); the command prints one.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && l != &"^")
        .collect::<Vec<_>>()
        .join(": ")
}

/// `a.b.0.c=value`: tables by key, lists by index; the value is TOML (`20`, `true`, `"x"`,
/// `[0, 1]`), or else taken as a bare string.
fn apply_override(tree: &mut toml::Table, arg: &str) -> Result<(), PlanError> {
    let (key, raw) = arg.split_once('=').ok_or_else(|| PlanError::SetSyntax { arg: arg.to_owned() })?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PlanError::SetSyntax { arg: arg.to_owned() });
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut root = toml::Value::Table(std::mem::take(tree));
    let result = set_path(&mut root, &parts, value);
    if let toml::Value::Table(t) = root {
        *tree = t;
    }
    result.map_err(|msg| PlanError::SetPath { arg: arg.to_owned(), msg })
}

fn set_path(node: &mut toml::Value, parts: &[&str], value: toml::Value) -> Result<(), String> {
    let (head, rest) = parts.split_first().expect("a non-empty path");
    if rest.is_empty() {
        *step(node, head)? = value;
        return Ok(());
    }
    set_path(step(node, head)?, rest, value)
}

/// One step down a dotted path: a table key (made if missing) or a list index.
fn step<'a>(v: &'a mut toml::Value, part: &str) -> Result<&'a mut toml::Value, String> {
    match v {
        toml::Value::Table(t) => Ok(t.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()))),
        toml::Value::Array(a) => {
            let i: usize = part.parse().map_err(|_| format!("'{part}' is not an index into a list"))?;
            let len = a.len();
            a.get_mut(i).ok_or_else(|| format!("index {i} is past the end of a list of {len}"))
        }
        _ => Err(format!("'{part}' goes through a value that is not a table or a list")),
    }
}

/// What each op accepts and gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Int,
    Path,
    Bytes,
    Sum,
    Batch(Box<Kind>),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Int => "integers".into(),
            Kind::Path => "file paths".into(),
            Kind::Bytes => "file contents".into(),
            Kind::Sum => "checksums".into(),
            Kind::Batch(k) => format!("batches of {}", k.describe()),
        }
    }
}

/// Checks the things serde cannot: one source kind, op parameters, and that each op gets the
/// kind of item it works on.
fn check(plan: &Plan) -> Result<(), String> {
    let s = &plan.source;
    let mut kind = match (s.count.is_some(), s.dir.is_some(), s.glob.is_some()) {
        (true, false, false) => Kind::Int,
        (false, true, false) | (false, false, true) => Kind::Path,
        (false, false, false) => {
            return Err(
                "[source] needs `count = N` (integers), `dir = \"path\"` or `glob = \"path/*.ext\"` (files)".into()
            );
        }
        _ => return Err("[source] has more than one of `count`, `dir` and `glob`; keep one".into()),
    };
    if let Some(g) = &s.glob
        && Path::new(g).parent().is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
    {
        return Err(format!("[source] glob = \"{g}\": `*` and `?` work in the file name only, not in directories"));
    }
    if s.generate.is_some() && s.dir.is_none() {
        return Err("[source] `generate` needs `dir` (where to make the files)".into());
    }
    if s.epochs == 0 {
        return Err("[source] epochs must be at least 1".into());
    }
    if s.rate < 0.0 || !s.rate.is_finite() {
        return Err(format!(
            "[source] rate must be a positive number of items per second (or 0 for closed loop), got {}",
            s.rate
        ));
    }
    for (i, st) in plan.stages.iter().enumerate() {
        let at = format!("stage {} (op = \"{}\")", i + 1, op_name(st.op));
        let need = |what: &str| format!("{at}: needs `{what}`");
        kind = match st.op {
            Op::Noop => kind,
            Op::Spin | Op::Sleep => {
                st.us.ok_or_else(|| need("us = microseconds per item"))?;
                kind
            }
            Op::Read if kind == Kind::Path => Kind::Bytes,
            Op::Checksum if matches!(kind, Kind::Bytes | Kind::Int) => Kind::Sum,
            Op::Batch => {
                match st.size {
                    Some(0) | None => return Err(need("size = items per batch (1 or more)")),
                    Some(_) => {}
                }
                Kind::Batch(Box::new(kind))
            }
            Op::Unbatch => match kind {
                Kind::Batch(inner) => *inner,
                other => return Err(format!("{at}: expects batches, but gets {}", other.describe())),
            },
            Op::Read => {
                return Err(format!("{at}: expects file paths, but gets {}; use a `dir` source", kind.describe()));
            }
            Op::Checksum => {
                return Err(format!("{at}: expects file contents or integers, but gets {}", kind.describe()));
            }
        };
        if st.concurrency == Some(0) {
            return Err(format!("{at}: concurrency must be at least 1"));
        }
        if st.drop_last && st.op != Op::Batch {
            return Err(format!("{at}: drop_last applies only to op = \"batch\""));
        }
    }
    Ok(())
}

pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Noop => "noop",
        Op::Spin => "spin",
        Op::Sleep => "sleep",
        Op::Read => "read",
        Op::Checksum => "checksum",
        Op::Batch => "batch",
        Op::Unbatch => "unbatch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p =
            load(&text(BASE), &["source.count=1000".into(), "stage.0.us=20".into(), "placement.mode=single".into()])
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
        assert!(e.to_string().contains("unknown variant `decode`"), "{e}");
        let e = load(&text("description = \"x\"\n[source\n"), &[]).unwrap_err().to_string();
        assert!(e.starts_with("test.toml: ") && e.contains("line 2"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
