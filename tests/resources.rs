//! Building and dropping many pipelines leaks no file descriptor and no thread: each one is
//! dropped mid-epoch with reads in flight (and a source thread waiting for room). Alone in its own test binary, so nothing else opens
//! or closes descriptors while they are counted.

mod common;

use std::time::Duration;

use shardpipe::images::{ImageFolder, LoaderOptions, batches, loader, synth};
use shardpipe::pipeline::{Placement, merge_sources, source};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

/// What each open descriptor is (for the failure message).
fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("procfs")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("procfs").count()
}

#[test]
fn many_pipelines_dropped_mid_epoch_leak_no_descriptor_or_thread() {
    let dir = std::env::temp_dir().join(format!("shardpipe-test-resources-{}", std::process::id()));
    synth::write_set(&dir, 64, 4, 2).expect("a small set");
    let folder = ImageFolder::open(&dir).unwrap().shuffle(1);
    let (fds, tasks, before) = (open_fds(), threads(), fd_targets());
    for i in 0..40 {
        let placement = if i % 2 == 0 { Placement::sharded() } else { Placement::single_loop() };
        let opts = LoaderOptions { width: 32, height: 32, epochs: None, ..LoaderOptions::default() };
        let Some(mut pipe) = common::start(batches(loader(folder.clone(), &opts), 8, false), placement) else {
            return;
        };
        // Take a few batches (more when i is larger), then drop it in the middle of an epoch.
        for _ in 0..(1 + i % 5) {
            pipe.recv_timeout(Duration::from_secs(30)).expect("an endless loader yields batches");
        }
        drop(pipe);
        // Endless sources on their own threads (one, or two merged), waiting for room when
        // dropped.
        let b = if i % 2 == 0 {
            source(0..u64::MAX).source_thread().map(|x| x + 1)
        } else {
            merge_sources([0..u64::MAX, 0..u64::MAX]).map(|x| x + 1)
        };
        let Some(mut pipe) = common::start(b, placement) else { return };
        for _ in 0..(1 + i * 100) {
            pipe.recv_timeout(Duration::from_secs(30)).expect("an endless source");
        }
        drop(pipe);
    }
    assert_eq!(open_fds(), fds, "descriptors before {before:?} and after 40 pipelines {:?}", fd_targets());
    // A thread leaves /proc/self/task a moment after `join` returns (the kernel reaps it after
    // waking the joiner), and a source thread busy past the pipeline's 200 ms patience ends at
    // its next item: wait for the count to settle before calling one leaked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while threads() > tasks && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads(), tasks, "threads before and after (allowed 10 s to end)");
    let _ = std::fs::remove_dir_all(&dir);
}
