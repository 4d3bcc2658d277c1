//! Resuming a training run mid-epoch: [`LoaderState`] records which samples the training loop
//! has consumed, is saved with the model's checkpoint, and [`ImageFolder::resume`] starts a new
//! loader where the old one stopped.
//!
//! ```text
//!  batch ─▶ training step ─▶ state.record(&batch.samples) ─▶ state.save(path)   (every N steps)
//!  restart: LoaderState::load(path) ─▶ folder.resume(&state) ─▶ loader(...) ─▶ the epoch's rest
//! ```
//!
//! The state is the epoch number and a bit per sample of the folder: set once the training loop
//! has taken the sample. Items that were read, decoded or batched but not yet consumed when the
//! process stopped are simply loaded again; none is consumed twice and none is skipped. Because
//! an epoch's order and every random crop depend only on the seed, the epoch and the sample,
//! a resumed run loads the same images with the same crops as a run that never stopped.
//!
//! The saved form is versioned, little-endian and checksummed (a torn write is refused, not
//! half-read); it names the dataset by its count and a hash of the file names and labels (not
//! their directory, so the dataset may move), with the shuffle seed and the rank's part, so a
//! state cannot be applied to another dataset or another rank by mistake.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::folder::SplitMix64;
use super::{ImageFolder, Sample};

/// Where a training run stands in its data: the epoch it is in, and which of that epoch's
/// samples its training loop has consumed. See [`ImageFolder::resume`] and `docs/data-loading.md`.
#[derive(Clone, PartialEq, Eq)]
pub struct LoaderState {
    pub(super) epoch: u64,
    pub(super) consumed: Vec<u64>,
    /// After an elastic resume ([`LoaderState::repartition`]): what the whole job had consumed of
    /// this epoch when it was re-partitioned. This rank walks the rest of the epoch, dealt out
    /// anew; `consumed` holds `base` and what this rank consumed since.
    pub(super) base: Option<Vec<u64>>,
    pub(super) id: DatasetId,
}

/// What a state belongs to: the dataset and this rank's way of walking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DatasetId {
    samples: u64,
    names: u64,
    seed: Option<u64>,
    /// [`WHOLE_JOB`] for a merged state ([`LoaderState::merge`]).
    pub(super) rank: u64,
    pub(super) world_size: u64,
    drop_last: bool,
}

/// The rank of a state merged from every rank of a job.
pub(super) const WHOLE_JOB: u64 = u64::MAX;

/// Why a [`LoaderState`] could not record, be read or be written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A sample whose index is outside the folder the state was made for.
    #[error(
        "sample {index} ({path}) is not in this state's folder of {samples} samples: record samples of the folder the state was made from"
    )]
    UnknownSample {
        /// The sample's index.
        index: u64,
        /// Its file.
        path: String,
        /// Samples in the state's folder.
        samples: u64,
    },
    /// A sample of an epoch the state has already left.
    #[error(
        "sample {path} is from epoch {sample_epoch}, but the state is at epoch {state_epoch}: record each batch once, in the order received"
    )]
    EarlierEpoch {
        /// The file.
        path: String,
        /// The sample's epoch.
        sample_epoch: u64,
        /// The state's epoch.
        state_epoch: u64,
    },
    /// Bytes that are not a saved state (or a torn or altered one).
    #[error("not a shardpipe loader state: {0} (pass what LoaderState::to_bytes or save wrote)")]
    Format(&'static str),
    /// A state file could not be read or written.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
}

/// Why a folder cannot resume from a state.
#[derive(Debug, thiserror::Error)]
#[error(
    "the loader state was saved for {what} {saved}, but this folder has {now}: resume with the same dataset, shuffle seed, partition and drop_last, or start afresh with LoaderState::new"
)]
pub struct ResumeError {
    /// What differs: "a dataset of", "shuffle seed", "rank/world_size", ….
    pub what: &'static str,
    /// The state's value.
    pub saved: String,
    /// The folder's value.
    pub now: String,
}

impl LoaderState {
    /// A state at the start of epoch 0 of `folder`, nothing consumed.
    pub fn new(folder: &ImageFolder) -> Self {
        let id = DatasetId::of(folder);
        Self { epoch: 0, consumed: vec![0; words(id.samples)], base: None, id }
    }

    /// The rank whose state this is; `None` for a state merged from every rank
    /// ([`LoaderState::merge`]).
    pub fn rank(&self) -> Option<u64> {
        (self.id.rank != WHOLE_JOB).then_some(self.id.rank)
    }

    /// The number of ranks of the job that saved the state.
    pub fn world_size(&self) -> u64 {
        self.id.world_size
    }

    /// The epoch the training loop is in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Samples of this epoch consumed so far (after an elastic resume, with what the whole job
    /// had consumed before it).
    pub fn consumed(&self) -> u64 {
        ones(&self.consumed)
    }

    /// Whether the training loop has consumed `sample` in the current epoch.
    pub fn has_consumed(&self, sample: &Sample) -> bool {
        sample.epoch == self.epoch && sample.index < self.id.samples && bit(&self.consumed, sample.index)
    }

    /// Marks `samples` consumed: call it once the training step that used a batch is done
    /// (`state.record(&batch.samples)`). A sample of a later epoch starts that epoch (as
    /// [`LoaderState::finish_epoch`] would); one of an earlier epoch, or of another folder, is
    /// an error and nothing is recorded.
    pub fn record(&mut self, samples: &[Sample]) -> Result<(), StateError> {
        let target = samples.iter().map(|s| s.epoch).fold(self.epoch, u64::max);
        for s in samples {
            let path = || s.path.display().to_string();
            if s.index >= self.id.samples {
                return Err(StateError::UnknownSample { index: s.index, path: path(), samples: self.id.samples });
            }
            if s.epoch < target {
                return Err(StateError::EarlierEpoch { path: path(), sample_epoch: s.epoch, state_epoch: target });
            }
        }
        if target > self.epoch {
            self.start_epoch(target);
        }
        for s in samples {
            self.consumed[(s.index / 64) as usize] |= 1 << (s.index % 64);
        }
        Ok(())
    }

    /// Ends the current epoch: call it when the epoch's iterator ends, so that a state saved
    /// between epochs resumes at the next one (samples that failed to load, or that
    /// `drop_last` left over, are then not tried again).
    pub fn finish_epoch(&mut self) {
        self.start_epoch(self.epoch + 1);
    }

    fn start_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.consumed.fill(0);
        self.base = None;
    }

    /// The state as bytes, to store with a checkpoint ([`LoaderState::from_bytes`] reads them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 8 * self.consumed.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let id = &self.id;
        for v in [self.epoch, id.samples, id.names, id.seed.unwrap_or(0), id.rank, id.world_size, self.consumed()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(id.seed.is_some()));
        out.push(u8::from(id.drop_last));
        out.push(u8::from(self.base.is_some()));
        for w in self.consumed.iter().chain(self.base.iter().flatten()) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads what [`LoaderState::to_bytes`] wrote, checking its checksum and consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let (body, sum) = bytes.split_at_checked(bytes.len().wrapping_sub(8)).ok_or(StateError::Format("too short"))?;
        if body.len() < FIELDS_END || &body[..4] != MAGIC {
            return Err(StateError::Format("no shardpipe state header"));
        }
        // Version 1 had no third flag (no elastic resume); it is read as "no base".
        let flag_count = match u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")) {
            1 => 2,
            VERSION => 3,
            _ => return Err(StateError::Format("written by another version of the format")),
        };
        if checksum(body).to_le_bytes() != sum {
            return Err(StateError::Format("the checksum does not match (a torn or altered file)"));
        }
        let field = |i: usize| u64::from_le_bytes(body[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
        let (flags, rest) =
            body[FIELDS_END..].split_at_checked(flag_count).ok_or(StateError::Format("no shardpipe state header"))?;
        let id = DatasetId {
            samples: field(1),
            names: field(2),
            seed: (flags[0] == 1).then(|| field(3)),
            rank: field(4),
            world_size: field(5),
            drop_last: flags[1] == 1,
        };
        let has_base = flags.get(2) == Some(&1);
        let sets = 1 + u64::from(has_base);
        if flags.iter().any(|&f| f > 1) || rest.len() as u64 != sets * 8 * words(id.samples) as u64 {
            return Err(StateError::Format("its length does not match its sample count"));
        }
        if id.world_size == 0 || (id.rank >= id.world_size && id.rank != WHOLE_JOB) {
            return Err(StateError::Format("its rank is not one of its world_size"));
        }
        let mut all = rest.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        let consumed: Vec<u64> = all.by_ref().take(words(id.samples)).collect();
        let base: Option<Vec<u64>> = has_base.then(|| all.collect());
        let beyond = consumed.last().is_some_and(|&w| !id.samples.is_multiple_of(64) && w >> (id.samples % 64) != 0);
        let state = Self { epoch: field(0), consumed, base, id };
        if state.consumed() != field(6) || beyond {
            return Err(StateError::Format("its consumed samples do not match its count"));
        }
        let outside = |b: &Vec<u64>| b.iter().zip(&state.consumed).any(|(b, c)| b & !c != 0);
        if state.base.as_ref().is_some_and(outside) || (has_base && id.rank == WHOLE_JOB) {
            return Err(StateError::Format("its resumed part does not match its consumed samples"));
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically: a temporary file beside it, synced, then renamed
    /// over it, so a crash leaves either the old state or the new one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StateError> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&self.to_bytes())?;
            file.sync_all()
        };
        write().map_err(|err| StateError::Io { path: tmp.clone(), err })?;
        std::fs::rename(&tmp, path).map_err(|err| StateError::Io { path: path.to_path_buf(), err })
    }

    /// Reads a state that [`LoaderState::save`] wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StateError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|err| StateError::Io { path: path.to_path_buf(), err })?;
        Self::from_bytes(&bytes)
    }

    /// The dataset and partition the state belongs to.
    pub(super) fn id(&self) -> &DatasetId {
        &self.id
    }

    /// The consumed-sample bits of the current epoch.
    pub(super) fn consumed_bits(&self) -> &[u64] {
        &self.consumed
    }

    /// After an elastic resume, what the job had consumed of the epoch before (see `base`).
    pub(super) fn base_bits(&self) -> Option<&[u64]> {
        self.base.as_deref()
    }
}

impl std::fmt::Debug for LoaderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoaderState")
            .field("epoch", &self.epoch)
            .field("consumed", &self.consumed())
            .field("elastic", &self.base.is_some())
            .field("dataset", &self.id)
            .finish()
    }
}

impl DatasetId {
    pub(super) fn of(folder: &ImageFolder) -> Self {
        let (seed, rank, world_size, drop_last) = folder.walk_settings();
        let mut names = checksum(&[]);
        for s in folder.samples() {
            let name = s.path.file_name().unwrap_or(s.path.as_os_str()).as_encoded_bytes();
            names = SplitMix64(names ^ checksum(name)).next() ^ u64::from(s.label.unwrap_or(u32::MAX));
        }
        let samples = folder.samples().len() as u64;
        Self { samples, names, seed, rank: rank as u64, world_size: world_size as u64, drop_last }
    }

    /// The first setting in which `self` (the saved state's) and `now` differ.
    pub(super) fn mismatch(&self, now: &Self) -> Option<ResumeError> {
        self.walk_mismatch(now).or_else(|| {
            let d = |id: &Self| match id.rank {
                WHOLE_JOB => format!(
                    "every rank of world_size {} (a merged state: take this rank's part with LoaderState::repartition)",
                    id.world_size
                ),
                rank => format!("rank {rank} of world_size {}", id.world_size),
            };
            let differ = (self.rank, self.world_size) != (now.rank, now.world_size);
            differ.then(|| ResumeError { what: "partition", saved: d(self), now: d(now) })
        })
    }

    /// The first setting other than the partition in which `self` and `now` differ: the
    /// dataset, the shuffle seed or `drop_last`.
    pub(super) fn walk_mismatch(&self, now: &Self) -> Option<ResumeError> {
        let differ = |what, saved: String, now: String| Some(ResumeError { what, saved, now });
        let seed = |s: Option<u64>| s.map_or("none (no shuffle)".to_string(), |s| s.to_string());
        if (self.samples, self.names) != (now.samples, now.names) {
            let d = |id: &Self| format!("{} samples (file names hash {:016x})", id.samples, id.names);
            differ("a dataset of", d(self), d(now))
        } else if self.seed != now.seed {
            differ("shuffle seed", seed(self.seed), seed(now.seed))
        } else if self.drop_last != now.drop_last {
            differ("drop_last", self.drop_last.to_string(), now.drop_last.to_string())
        } else {
            None
        }
    }
}

/// How many bits of `bits` are set.
pub(super) fn ones(bits: &[u64]) -> u64 {
    bits.iter().map(|w| u64::from(w.count_ones())).sum()
}

/// Whether bit `i` of `bits` is set.
pub(super) fn bit(bits: &[u64], i: u64) -> bool {
    bits[(i / 64) as usize] & (1 << (i % 64)) != 0
}

const MAGIC: &[u8; 4] = b"SPLS";
/// Version 2 added the elastic resume's `base` (a third flag and a second bit set).
const VERSION: u32 = 2;
/// Magic, version and seven u64 fields; the flag bytes follow.
const FIELDS_END: usize = 4 + 4 + 7 * 8;
/// With version 2's three flag bytes.
const HEADER: usize = FIELDS_END + 3;

fn words(samples: u64) -> usize {
    samples.div_ceil(64) as usize
}

/// A stable 64-bit hash (it is saved, so it must not change between builds or platforms).
fn checksum(bytes: &[u8]) -> u64 {
    let mix = |z| SplitMix64(z).next();
    let mut h = 0x243f_6a88_85a3_08d3 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(h ^ u64::from_le_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(n: usize) -> ImageFolder {
        ImageFolder::from_files((0..n).map(|i| (format!("data/f{i}.jpg"), Some((i % 3) as u32)))).unwrap()
    }

    fn indices(v: &[Sample]) -> Vec<u64> {
        v.iter().map(|s| s.index).collect()
    }

    #[test]
    fn recording_marks_samples_once_and_a_later_epoch_starts_afresh() {
        let f = folder(130).shuffle(5);
        let mut state = LoaderState::new(&f);
        let e0 = f.epoch(0);
        state.record(&e0[..10]).unwrap();
        state.record(&e0[5..20]).unwrap();
        assert_eq!((state.epoch(), state.consumed()), (0, 20), "a sample recorded twice counts once");
        assert!(e0[..20].iter().all(|s| state.has_consumed(s)) && !state.has_consumed(&e0[20]));
        let e1 = f.epoch(1);
        state.record(&e1[..3]).unwrap();
        assert_eq!((state.epoch(), state.consumed()), (1, 3), "a sample of epoch 1 starts it");
        assert!(!state.has_consumed(&e0[0]), "epoch 0's marks are gone");
        state.finish_epoch();
        assert_eq!((state.epoch(), state.consumed()), (2, 0));
    }

    #[test]
    fn a_sample_of_an_earlier_epoch_or_another_folder_is_refused_and_nothing_is_recorded() {
        let f = folder(10);
        let mut state = LoaderState::new(&f);
        state.record(&f.epoch(1)[..2]).unwrap();
        let err = state.record(&f.epoch(0)[..1]).unwrap_err();
        assert!(matches!(err, StateError::EarlierEpoch { sample_epoch: 0, state_epoch: 1, .. }), "{err}");
        let mixed = [f.epoch(2)[0].clone(), f.epoch(1)[5].clone()];
        assert!(matches!(state.record(&mixed), Err(StateError::EarlierEpoch { sample_epoch: 1, state_epoch: 2, .. })));
        let stranger = folder(20).epoch(1)[15].clone();
        let err = state.record(&[f.epoch(1)[7].clone(), stranger]).unwrap_err();
        assert!(err.to_string().contains("sample 15 (data/f15.jpg) is not in this state's folder of 10"), "{err}");
        assert_eq!((state.epoch(), state.consumed()), (1, 2), "failed records change nothing");
    }

    #[test]
    fn a_resumed_epoch_is_the_rest_of_the_epoch_in_its_order_and_later_epochs_are_whole() {
        for world_size in [1, 3] {
            let f = folder(200).shuffle(9).partition(world_size - 1, world_size).unwrap();
            let mut state = LoaderState::new(&f);
            state.finish_epoch();
            let e1 = f.epoch(1);
            // Consumed out of order, as an unordered pipeline delivers.
            let consumed: Vec<Sample> = e1.iter().step_by(3).cloned().collect();
            state.record(&consumed).unwrap();
            let resumed = f.clone().resume(&state).unwrap();
            assert_eq!(resumed.first_epoch(), 1);
            let rest: Vec<u64> = indices(&e1).into_iter().filter(|i| !indices(&consumed).contains(i)).collect();
            assert_eq!(indices(&resumed.epoch(1)), rest);
            assert_eq!(resumed.epoch(1).len() + consumed.len(), f.epoch_len());
            assert_eq!(indices(&resumed.epoch(2)), indices(&f.epoch(2)), "later epochs are whole");
            assert_eq!(folder(200).first_epoch(), 0);
        }
    }

    #[test]
    fn a_state_refuses_another_dataset_seed_partition_or_drop_last_but_not_a_moved_directory() {
        let f = folder(50).shuffle(1).partition(0, 2).unwrap();
        let state = LoaderState::new(&f);
        let moved =
            ImageFolder::from_files((0..50).map(|i| (format!("/mnt/elsewhere/f{i}.jpg"), Some((i % 3) as u32))))
                .unwrap()
                .shuffle(1)
                .partition(0, 2)
                .unwrap();
        assert!(moved.resume(&state).is_ok(), "the same names and labels in another directory");
        let relabelled =
            ImageFolder::from_files((0..50).map(|i| (format!("data/f{i}.jpg"), Some((i % 4) as u32)))).unwrap();
        let cases = [
            (folder(51).shuffle(1).partition(0, 2).unwrap(), "a dataset of 50 samples"),
            (relabelled.shuffle(1).partition(0, 2).unwrap(), "a dataset of 50 samples"),
            (folder(50).partition(0, 2).unwrap(), "shuffle seed 1, but this folder has none (no shuffle)"),
            (
                folder(50).shuffle(1).partition(1, 2).unwrap(),
                "partition rank 0 of world_size 2, but this folder has rank 1",
            ),
            (
                folder(50).shuffle(1).partition(0, 2).unwrap().drop_last(true),
                "drop_last false, but this folder has true",
            ),
        ];
        for (other, says) in cases {
            let err = other.resume(&state).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains("LoaderState::new"), "{err}");
        }
    }

    fn sample_state() -> LoaderState {
        let f = folder(130).shuffle(3).partition(1, 2).unwrap().drop_last(true);
        let mut state = LoaderState::new(&f);
        state.record(&f.epoch(4)[..17]).unwrap();
        state
    }

    #[test]
    fn bytes_and_files_round_trip() {
        let state = sample_state();
        assert_eq!(LoaderState::from_bytes(&state.to_bytes()).unwrap(), state);
        let dir = std::env::temp_dir().join(format!("shardpipe-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loader.state");
        LoaderState::new(&folder(3)).save(&path).unwrap();
        state.save(&path).unwrap();
        assert_eq!(LoaderState::load(&path).unwrap(), state, "the second save replaced the first");
        assert!(!dir.join("loader.state.tmp").exists(), "no temporary file left");
        let missing = dir.join("no/such/dir/loader.state");
        let err = state.save(&missing).unwrap_err().to_string();
        assert!(err.contains("no/such/dir/loader.state.tmp"), "{err}");
        let err = LoaderState::load(&missing).unwrap_err().to_string();
        assert!(err.contains("no/such/dir/loader.state:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = sample_state().to_bytes();
        for len in 0..bytes.len() {
            assert!(matches!(LoaderState::from_bytes(&bytes[..len]), Err(StateError::Format(_))), "cut at {len}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(matches!(LoaderState::from_bytes(&b), Err(StateError::Format(_))), "byte {i} flipped");
        }
        let err = LoaderState::from_bytes(b"{\"epoch\": 3}").unwrap_err().to_string();
        assert!(err.contains("not a shardpipe loader state") && err.contains("LoaderState::to_bytes"), "{err}");
    }

    /// States saved by this version and the last must stay readable: the layouts and both
    /// hashes are pinned.
    #[test]
    fn the_saved_forms_of_known_states_are_pinned() {
        let f =
            ImageFolder::from_files([("a/x.jpg", Some(0)), ("b/y.jpg", Some(1)), ("z.png", None)]).unwrap().shuffle(9);
        let mut state = LoaderState::new(&f);
        state.record(&f.epoch(2)[..2]).unwrap();
        let head = [
            "53504c53",         // "SPLS"
            "02000000",         // version 2
            "0200000000000000", // epoch 2
            "0300000000000000", // 3 samples
            "c0e8d81aa856d383", // names hash
            "0900000000000000", // seed 9
        ];
        let fields = [
            "0000000000000000", // rank 0
            "0100000000000000", // world_size 1
            "0200000000000000", // 2 consumed
            "01",               // shuffled
            "00",               // no drop_last
            "00",               // not resumed elastically
            "0500000000000000", // samples 0 and 2
            "5b43d08e0fd217ce", // checksum
        ];
        assert_eq!(hex(&state.to_bytes()), [&head[..], &fields].concat().concat());
        let version_1 = concat!(
            "53504c530100000002000000000000000300000000000000c0e8d81aa856d383",
            "0900000000000000000000000000000001000000000000000200000000000000",
            "01000500000000000000a519033546f57b17",
        );
        assert_eq!(LoaderState::from_bytes(&unhex(version_1)).unwrap(), state, "version 1 is read");

        let merged = LoaderState::merge(&[state]).unwrap();
        let rank = merged.repartition(&f.clone().partition(1, 2).unwrap()).unwrap();
        let fields = [
            "0100000000000000", // rank 1
            "0200000000000000", // world_size 2
            "0200000000000000", // 2 consumed
            "01",               // shuffled
            "00",               // no drop_last
            "01",               // resumed elastically
            "0500000000000000", // samples 0 and 2 consumed
            "0500000000000000", // ... by the job before its resume
            "97dafcd4379d9820", // checksum
        ];
        assert_eq!(hex(&rank.to_bytes()), [&head[..], &fields].concat().concat());
        assert_eq!(LoaderState::from_bytes(&rank.to_bytes()).unwrap(), rank);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
