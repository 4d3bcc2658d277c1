//! `shardpipe bench`: each of its measures runs and reports, the hand-off is checksummed and the
//! read pass read every byte.

use std::process::Command;

#[test]
fn bench_reports_every_measure_and_reads_every_byte() {
    let out = Command::new(env!("CARGO_BIN_EXE_shardpipe")).arg("bench").output().expect("the binary runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if stderr.contains("io_uring") && out.status.code() == Some(2) {
        eprintln!("SKIPPED: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let shards: usize = stdout
        .strip_prefix("shardpipe bench: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no shard count first: {stdout}"));
    assert!(stdout.contains(" checksums ok"), "{stdout}");
    assert!(stdout.contains("ping-pong shard 0 <-> shard"), "{stdout}");
    assert!(stdout.contains("spawn + await: "), "{stdout}");
    assert!(stdout.contains("read 256 files of 128 KiB (32 MiB), best of 5: all shards "), "{stdout}");
    let reports = stdout.lines().filter(|l| l.starts_with("  shard-") && l.contains("task polls")).count();
    assert_eq!(reports, shards, "one report per shard: {stdout}");
}
