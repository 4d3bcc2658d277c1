//! `IORING_OP_CLOSE`: close a descriptor through the ring.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};

use io_uring::{opcode, types};

use super::{NotOnShard, Op, syscall_result};

/// Starts closing `fd`; ownership passes to the kernel.
pub(crate) fn close(fd: OwnedFd) -> Result<Op<()>, (OwnedFd, NotOnShard)> {
    if !crate::runtime::context::on_shard() {
        return Err((fd, NotOnShard));
    }
    let raw = fd.into_raw_fd();
    let entry = opcode::Close::new(types::Fd(raw)).build();
    // SAFETY: `raw` was released from its OwnedFd above, so this is its only close.
    let sync = move |_: &mut ()| syscall_result(unsafe { libc::close(raw) } as isize);
    // SAFETY: a close entry holds no pointers.
    unsafe { Op::submit(entry, (), sync) }.map_err(|e| (crate::sys::owned_fd(raw), e))
}

/// Waits for the close to complete.
pub(crate) async fn run(op: Op<()>) -> io::Result<()> {
    let (done, ()) = op.await;
    done.into_io().map(|_| ())
}
