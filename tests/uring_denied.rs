//! io_uring denied as a container's default seccomp profile denies it: by default the binary runs
//! on the fallback driver and says so once; with `SHARDPIPE_DRIVER=uring` it exits with code 2
//! and one message naming the cause and the remedy. Never a panic.

#![cfg(target_arch = "x86_64")]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Installs a seccomp filter that fails `io_uring_setup` with `EPERM` (Docker's default profile
/// does the same) and allows everything else.
fn deny_io_uring_setup() -> std::io::Result<()> {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let ret_errno_eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let filter = [
        // A = seccomp_data.arch; kill nothing on another arch, just allow.
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 4 },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 3,
            k: AUDIT_ARCH_X86_64,
        },
        // A = seccomp_data.nr
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: ret_errno_eperm },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: prctl with these arguments only reads `prog`, which outlives the call; it runs in
    // the forked child before exec, where only async-signal-safe calls are allowed (prctl is).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The binary with io_uring denied, `SHARDPIPE_DRIVER` set to `driver` (or unset).
fn denied(driver: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardpipe"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    match driver {
        Some(d) => cmd.env("SHARDPIPE_DRIVER", d),
        None => cmd.env_remove("SHARDPIPE_DRIVER"),
    };
    // SAFETY: the closure makes only async-signal-safe calls (prctl) between fork and exec.
    unsafe { cmd.pre_exec(deny_io_uring_setup) };
    cmd.output().expect("run the shardpipe binary")
}

#[test]
fn denied_io_uring_with_driver_uring_is_one_clear_error_and_exit_code_2() {
    let out = denied(Some("uring"), &["run", "tiny-tasks", "--items", "1000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the binary said: {stderr}");
    assert_eq!(out.status.code(), Some(2), "exit code 2 for an environment error; stderr: {stderr}");
    assert!(stderr.contains("io_uring is unavailable"), "names the cause: {stderr}");
    assert!(stderr.contains("Operation not permitted"), "quotes the kernel's answer: {stderr}");
    assert!(stderr.contains("seccomp"), "names the remedy: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn denied_io_uring_falls_back_by_default_says_so_once_and_runs() {
    for plan in ["tiny-tasks", "io-bound"] {
        let out = denied(None, &["run", plan, "--items", "200", "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{plan}: runs on the fallback; stderr: {stderr}");
        assert_eq!(stderr.matches("using the fallback driver").count(), 1, "said once: {stderr}");
        assert!(stderr.contains("Operation not permitted"), "names the cause: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let run = &v["runs"][0];
        assert_eq!(run["driver"], "fallback (no io_uring)", "{plan}: the report says which driver ran");
        assert!(run["account"]["balances"].as_bool().unwrap() && run["items"].as_u64().unwrap() > 0, "{run}");
    }
}

#[test]
fn a_bad_driver_variable_is_one_line_and_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_shardpipe"))
        .args(["run", "tiny-tasks", "--items", "10"])
        .env("SHARDPIPE_DRIVER", "epoll")
        .output()
        .expect("run the shardpipe binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SHARDPIPE_DRIVER=\"epoll\" is not a driver"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}
