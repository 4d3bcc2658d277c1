//! Creating a shard's ring with the best setup flags the kernel accepts.
//!
//! Order of preference: `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (6.1+: completions are
//! delivered only when this thread asks, no inter-processor interrupts), then
//! `COOP_TASKRUN | TASKRUN_FLAG` (5.19+), then no flags. `EINVAL` means "flag unknown": try the
//! next; `EPERM`/`ENOSYS` mean io_uring itself is denied and are reported with a remedy.

use std::fmt;
use std::io;

use io_uring::IoUring;

/// Which setup flags the ring was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG`.
    SingleIssuerDeferTaskrun,
    /// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG`.
    CoopTaskrun,
    /// No optional setup flags.
    Plain,
    /// No ring at all: the fallback driver (plain syscalls, eventfd parking).
    Fallback,
}

impl RingMode {
    /// Whether the shard runs on io_uring.
    pub fn is_uring(self) -> bool {
        self != RingMode::Fallback
    }

    /// The driver in words, for reports: `io_uring (FLAGS)` or `fallback (no io_uring)`.
    pub fn driver(self) -> String {
        if self.is_uring() { format!("io_uring ({self})") } else { "fallback (no io_uring)".into() }
    }
}

impl fmt::Display for RingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingMode::SingleIssuerDeferTaskrun => "SINGLE_ISSUER|DEFER_TASKRUN",
            RingMode::CoopTaskrun => "COOP_TASKRUN|TASKRUN_FLAG",
            RingMode::Plain => "plain",
            RingMode::Fallback => "fallback",
        })
    }
}

/// Why io_uring could not be used at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("io_uring is unavailable: {cause}. {remedy}")]
pub struct UringUnavailable {
    /// What the kernel said.
    pub cause: String,
    /// What to do about it.
    pub remedy: &'static str,
}

const SECCOMP_REMEDY: &str = "Allow the io_uring_setup, io_uring_enter and io_uring_register \
    syscalls in the container's seccomp profile (Docker: --security-opt seccomp=<profile>), \
    or run outside the container; or let shardpipe use its fallback driver (SHARDPIPE_DRIVER=auto, \
    the default, or =fallback)";

/// Checks the sysctl before touching the syscall, so the error can name the knob.
pub(crate) fn check_sysctl() -> Result<(), UringUnavailable> {
    sysctl_verdict(crate::sys::io_uring_disabled_sysctl())
}

/// What a value of `kernel.io_uring_disabled` means for us.
fn sysctl_verdict(value: u8) -> Result<(), UringUnavailable> {
    match value {
        0 => Ok(()),
        1 => Ok(()), // allowed for root and the io_uring group; setup itself will tell
        v => Err(UringUnavailable {
            cause: format!("/proc/sys/kernel/io_uring_disabled is {v} (io_uring off for every process)"),
            remedy: "Set it to 0 (sysctl -w kernel.io_uring_disabled=0) as root",
        }),
    }
}

/// Applies one set of optional setup flags to a ring builder.
type ApplyFlags = fn(&mut io_uring::Builder);

/// Builds a ring of `entries` submission slots on the calling thread.
pub(crate) fn build_ring(entries: u32) -> Result<(IoUring, RingMode), UringUnavailable> {
    let cq = entries.saturating_mul(4);
    let attempts: [(RingMode, ApplyFlags); 3] = [
        (RingMode::SingleIssuerDeferTaskrun, |b| {
            b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag();
        }),
        (RingMode::CoopTaskrun, |b| {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }),
        (RingMode::Plain, |_| {}),
    ];
    let mut last = None;
    for (mode, apply) in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq).setup_submit_all();
        apply(&mut builder);
        match builder.build(entries) {
            Ok(ring) => return Ok((ring, mode)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(unavailable(e)),
        }
    }
    Err(unavailable(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))))
}

fn unavailable(e: io::Error) -> UringUnavailable {
    let remedy = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::ENOSYS) => SECCOMP_REMEDY,
        Some(libc::ENOMEM) => "Raise the locked-memory limit (ulimit -l) or use fewer shards",
        _ => "Check that the kernel is 5.19 or newer and built with CONFIG_IO_URING",
    };
    UringUnavailable { cause: format!("io_uring_setup failed: {e}"), remedy }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn disabled_sysctl_names_the_knob_and_the_fix() {
        assert!(sysctl_verdict(0).is_ok());
        assert!(sysctl_verdict(1).is_ok(), "1 still lets root and the io_uring group in");
        let e = sysctl_verdict(2).unwrap_err().to_string();
        assert!(e.contains("/proc/sys/kernel/io_uring_disabled is 2"), "{e}");
        assert!(e.contains("sysctl -w kernel.io_uring_disabled=0"), "{e}");
    }

    #[test]
    fn denied_setup_points_at_seccomp() {
        let e = unavailable(std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.remedy.contains("seccomp"), "{e}");
        let e = unavailable(std::io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(e.remedy.contains("seccomp"), "{e}");
        let e = unavailable(std::io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.remedy.contains("ulimit -l"), "{e}");
    }
}
