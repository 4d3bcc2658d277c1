//! The image-folder source: which files an epoch reads, in which order, on which rank.
//!
//! A folder is listed once ([`ImageFolder::open`]) into a sorted sample list; every epoch then
//! derives its order from that list alone: a Fisher–Yates shuffle seeded with `seed` mixed with
//! the epoch number (the same on every rank, so ranks agree), then every `world_size`-th
//! sample from position `rank` (as PyTorch's `DistributedSampler` strides).
//! A resumed epoch leaves out what the training loop consumed; after an elastic resume
//! (`elastic.rs`) the rest of the epoch is dealt out to the new ranks the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::resume::{DatasetId, LoaderState, ResumeError, bit};

/// One file to load: its position in the folder's sorted list, the epoch it is loaded in, its
/// path and its class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sample {
    /// Position in [`ImageFolder::samples`] (stable across epochs and ranks).
    pub index: u64,
    /// The pass over the folder this sample is loaded in ([`ImageFolder::epoch`]'s argument; 0
    /// in [`ImageFolder::samples`]). [`Augment`](super::Augment) draws from it, so each epoch
    /// crops an image differently.
    pub epoch: u64,
    /// The file.
    pub path: Arc<Path>,
    /// The class: the index of its sub-directory in [`ImageFolder::classes`]; `None` for a
    /// file at the top of the folder or in a file list without labels.
    pub label: Option<u32>,
}

/// Why a folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A directory could not be listed.
    #[error("{}: cannot list it: {err}", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// Nothing to load.
    #[error("{0}: no image files (make some with `shardpipe gen-images {0} --count 512`)")]
    Empty(String),
    /// `rank` must be below `world_size`, and `world_size` at least 1.
    #[error("rank {rank} with world_size {world_size}: need world_size >= 1 and rank < world_size")]
    Partition {
        /// The rank given.
        rank: usize,
        /// The world size given.
        world_size: usize,
    },
    /// An image list that names no files.
    #[error("{}: the list names no files (one `path [label]` per line)", .0.display())]
    EmptyList(PathBuf),
    /// A line of an image list ([`ImageFolder::from_list`]) that cannot be read.
    #[error("{}, line {line}: {reason}", path.display())]
    ListLine {
        /// The list file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// More classes than a `u32` label holds.
    #[error("{0} classes is more than a u32 label holds")]
    TooManyClasses(usize),
}

/// Nesting deeper than this under a class directory is refused (it guards symlink loops).
const MAX_DEPTH: usize = 32;

/// An image dataset: its samples, classes, and how epochs are ordered and partitioned.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    samples: Arc<[Sample]>,
    classes: Arc<[String]>,
    origin: String,
    seed: Option<u64>,
    rank: usize,
    world_size: usize,
    drop_last: bool,
    /// Set by [`ImageFolder::resume`]: the first epoch, and the samples of it already consumed.
    resume: Option<Arc<LoaderState>>,
}

impl ImageFolder {
    /// Lists `dir`: each sub-directory is a class (sorted by name; label = its position), and
    /// every regular file under it (at any depth) is a sample of that class; regular files at
    /// the top have no label. Names starting with `.` are skipped. Every other file is listed,
    /// whatever its extension: one that is in none of [`decode`](super::decode)'s formats fails at decode, counted and named.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FolderError> {
        let dir = dir.as_ref();
        let mut loose = Vec::new();
        let mut classes = Vec::new();
        for entry in sorted_entries(dir)? {
            if entry.is_dir() {
                let mut files = Vec::new();
                walk(&entry, 0, &mut files)?;
                classes.push((name_of(&entry), files));
            } else if entry.is_file() {
                loose.push(entry);
            }
        }
        if u32::try_from(classes.len()).is_err() {
            return Err(FolderError::TooManyClasses(classes.len()));
        }
        let mut list: Vec<(PathBuf, Option<u32>)> = loose.into_iter().map(|p| (p, None)).collect();
        let mut names = Vec::with_capacity(classes.len());
        for (label, (name, files)) in classes.into_iter().enumerate() {
            names.push(name);
            list.extend(files.into_iter().map(|p| (p, Some(label as u32))));
        }
        let mut folder = Self::from_files(list).map_err(|_| FolderError::Empty(dir.display().to_string()))?;
        folder.set_origin(dir.display().to_string(), names);
        Ok(folder)
    }

    /// A dataset from a file list (labels optional), in the order given.
    pub fn from_files<P: Into<PathBuf>>(
        files: impl IntoIterator<Item = (P, Option<u32>)>,
    ) -> Result<Self, FolderError> {
        let samples: Arc<[Sample]> = files
            .into_iter()
            .enumerate()
            .map(|(i, (path, label))| Sample { index: i as u64, epoch: 0, path: Arc::from(path.into()), label })
            .collect();
        if samples.is_empty() {
            return Err(FolderError::Empty("the file list".into()));
        }
        Ok(Self {
            samples,
            classes: Arc::from([]),
            origin: "a file list".into(),
            seed: None,
            rank: 0,
            world_size: 1,
            drop_last: false,
            resume: None,
        })
    }

    /// Keeps only the first `n` samples of the listing, with the classes and origin: a quick run
    /// over part of a dataset (all if there are fewer; one if `n` is 0, as a folder is never
    /// empty). Shuffling and partitioning then apply to those `n`.
    pub fn take(mut self, n: usize) -> Self {
        if n < self.samples.len() {
            self.samples = self.samples[..n.max(1)].into();
        }
        self
    }

    /// Names the folder's origin (for messages) and its class names.
    pub(super) fn set_origin(&mut self, origin: String, classes: Vec<String>) {
        self.origin = origin;
        self.classes = classes.into();
    }

    /// Shuffles every epoch with `seed` (mixed with the epoch number: each epoch differs, and
    /// the same seed gives the same orders on every run and every rank).
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Loads only this process's part of each epoch: `rank` of `world_size` processes. The parts
    /// are disjoint and together cover the epoch; they differ in size by at most one sample
    /// unless [`ImageFolder::drop_last`] evens them out.
    pub fn partition(mut self, rank: usize, world_size: usize) -> Result<Self, FolderError> {
        if world_size == 0 || rank >= world_size {
            return Err(FolderError::Partition { rank, world_size });
        }
        self.rank = rank;
        self.world_size = world_size;
        Ok(self)
    }

    /// Drops the last `len % world_size` samples of each (shuffled) epoch, so that every rank
    /// loads the same number (ranks that step in lockstep need this).
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// Continues a training run where `state` (saved by the run that stopped) left off:
    /// [`ImageFolder::first_epoch`] becomes the state's epoch, and that epoch leaves out the
    /// samples the state records as consumed. Later epochs are whole. The folder must list the
    /// same files (by name and label, wherever the directory now is) with the same shuffle
    /// seed, partition and `drop_last`: call this after [`ImageFolder::shuffle`],
    /// [`ImageFolder::partition`] and [`ImageFolder::drop_last`]. To resume on another number
    /// of ranks, merge every rank's state and take this rank's part of it
    /// ([`LoaderState::merge`], [`LoaderState::repartition`]).
    pub fn resume(mut self, state: &LoaderState) -> Result<Self, ResumeError> {
        if let Some(err) = state.id().mismatch(&DatasetId::of(&self)) {
            return Err(err);
        }
        self.resume = Some(Arc::new(state.clone()));
        Ok(self)
    }

    /// The epoch a loader starts at: 0, or the resumed state's ([`ImageFolder::resume`]).
    pub fn first_epoch(&self) -> u64 {
        self.resume.as_ref().map_or(0, |r| r.epoch())
    }

    /// What [`LoaderState`] identifies a walk over the folder by, besides its samples.
    pub(super) fn walk_settings(&self) -> (Option<u64>, usize, usize, bool) {
        (self.seed, self.rank, self.world_size, self.drop_last)
    }

    /// Every sample, in listing order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Class names (sub-directories), in label order; empty without classes.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Where the samples came from (for messages).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Samples this rank loads per whole epoch (a resumed epoch loads fewer).
    pub fn epoch_len(&self) -> usize {
        let n = self.kept(self.samples.len());
        n / self.world_size + usize::from(self.rank < n % self.world_size)
    }

    /// How many of `n` samples dealt out to the ranks are kept (`drop_last`: a multiple of
    /// `world_size`).
    fn kept(&self, n: usize) -> usize {
        if self.drop_last { n - n % self.world_size } else { n }
    }

    /// This rank's samples for `epoch`, in loading order; after [`ImageFolder::resume`], the
    /// resumed epoch without the samples already consumed. After an elastic resume
    /// ([`LoaderState::repartition`]) the epoch's samples that the job had not consumed are
    /// dealt out to the new ranks as a whole epoch would be.
    pub fn epoch(&self, epoch: u64) -> Vec<Sample> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if let Some(seed) = self.seed {
            let mut rng = SplitMix64(seed ^ epoch_mix(epoch));
            for i in (1..order.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        let resumed = self.resume.as_deref().filter(|r| r.epoch() == epoch);
        if let Some(base) = resumed.and_then(LoaderState::base_bits) {
            order.retain(|&i| !bit(base, i as u64));
        }
        order.truncate(self.kept(order.len()));
        let consumed = resumed.map(LoaderState::consumed_bits);
        order
            .into_iter()
            .skip(self.rank)
            .step_by(self.world_size)
            .filter(|&i| consumed.is_none_or(|bits| !bit(bits, i as u64)))
            .map(|i| Sample { epoch, ..self.samples[i].clone() })
            .collect()
    }
}

/// An epoch number spread over 64 bits, to mix into a seed (the shuffle's, an augmentation's).
pub(crate) fn epoch_mix(epoch: u64) -> u64 {
    epoch.wrapping_add(1).wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// A small, well-mixed generator: the shuffle must be identical on every platform and rank.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The entries of `dir`, sorted, without hidden ones.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let list = |err| FolderError::List { path: dir.to_path_buf(), err };
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list)? {
        let path = entry.map_err(list)?.path();
        if !name_of(&path).starts_with('.') {
            v.push(path);
        }
    }
    v.sort();
    Ok(v)
}

/// Every regular file under `dir`, depth first, sorted at each level.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), FolderError> {
    if depth > MAX_DEPTH {
        let err = std::io::Error::other(format!("nested more than {MAX_DEPTH} directories deep (a symlink loop?)"));
        return Err(FolderError::List { path: dir.to_path_buf(), err });
    }
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            walk(&entry, depth + 1, out)?;
        } else if entry.is_file() {
            out.push(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(n: usize) -> ImageFolder {
        ImageFolder::from_files((0..n).map(|i| (format!("f{i}"), None))).unwrap()
    }

    fn indices(v: &[Sample]) -> Vec<u64> {
        v.iter().map(|s| s.index).collect()
    }

    #[test]
    fn without_shuffle_an_epoch_is_the_list() {
        assert_eq!(indices(&folder(5).epoch(3)), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn shuffles_are_deterministic_per_seed_and_differ_between_epochs() {
        let f = folder(100).shuffle(7);
        let (e0, e1) = (indices(&f.epoch(0)), indices(&f.epoch(1)));
        assert_eq!(e0, indices(&folder(100).shuffle(7).epoch(0)));
        assert_ne!(e0, e1);
        assert_ne!(e0, indices(&folder(100).shuffle(8).epoch(0)));
        let mut sorted = e1.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "a permutation");
    }

    #[test]
    fn rank_parts_are_disjoint_cover_the_epoch_and_match_epoch_len() {
        for drop_last in [false, true] {
            let mut seen = Vec::new();
            for rank in 0..3 {
                let f = folder(10).shuffle(1).partition(rank, 3).unwrap().drop_last(drop_last);
                let part = indices(&f.epoch(4));
                assert_eq!(part.len(), f.epoch_len());
                seen.extend(part);
            }
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), if drop_last { 9 } else { 10 }, "disjoint parts covering the kept samples");
        }
        assert!(matches!(folder(3).partition(3, 3), Err(FolderError::Partition { .. })));
        assert!(matches!(folder(3).partition(0, 0), Err(FolderError::Partition { .. })));
    }

    #[test]
    fn take_keeps_the_first_samples_and_the_classes() {
        let mut f = folder(10);
        f.set_origin("here".into(), vec!["a".into()]);
        let part = f.clone().take(4);
        assert_eq!(indices(part.samples()), [0, 1, 2, 3]);
        assert_eq!((part.classes(), part.origin()), (f.classes(), "here"));
        assert_eq!(f.clone().take(99).samples().len(), 10);
        assert_eq!(f.take(0).samples().len(), 1, "a folder is never empty");
    }

    #[test]
    fn an_empty_list_is_an_error_that_says_how_to_make_data() {
        let e = ImageFolder::from_files(Vec::<(PathBuf, Option<u32>)>::new()).unwrap_err();
        assert!(e.to_string().contains("gen-images"), "{e}");
    }
}
