//! `IORING_OP_TIMEOUT`: a kernel timer that completes after a duration.

use std::time::Duration;

use io_uring::{opcode, types};

use super::{NotOnShard, Op};

/// The timespec the kernel reads, on the heap.
#[derive(Debug)]
pub(crate) struct Timeout {
    #[allow(dead_code)] // never read: owned so the kernel's pointer into it stays valid
    ts: Box<types::Timespec>,
}

/// Starts a kernel timeout of `d`.
pub(crate) fn timeout(d: Duration) -> Result<Op<Timeout>, NotOnShard> {
    let ts = Box::new(types::Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos()));
    let ptr: *const types::Timespec = &*ts;
    let entry = opcode::Timeout::new(ptr).build();
    // Without a ring there is no kernel timer to wait on without blocking the shard:
    // `io::uring_timeout` uses the runtime's timer there instead and never gets here.
    let sync = |_: &mut Timeout| -libc::EOPNOTSUPP;
    // SAFETY: the timespec pointer points into the box owned by `Timeout`.
    unsafe { Op::submit(entry, Timeout { ts }, sync) }
}

/// Waits for the timeout; `-ETIME` is the normal expiry.
pub(crate) async fn run(op: Op<Timeout>) -> std::io::Result<()> {
    let (done, Timeout { ts: _ }) = op.await;
    match done.result {
        r if r == -libc::ETIME || r >= 0 => Ok(()),
        r => Err(std::io::Error::from_raw_os_error(-r)),
    }
}
