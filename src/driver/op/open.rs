//! `IORING_OP_OPENAT`: open a path relative to the current directory.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use io_uring::{opcode, types};

use super::{NotOnShard, Op};

/// The path, kept alive until the kernel has read it.
#[derive(Debug)]
pub(crate) struct Open {
    #[allow(dead_code)] // never read: owned so the kernel's pointer into it stays valid
    path: CString,
}

/// Starts opening `path` with `flags` (always `O_CLOEXEC`) and `mode`.
pub(crate) fn open(path: CString, flags: i32, mode: u32) -> Result<Op<Open>, NotOnShard> {
    let entry =
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).flags(flags | libc::O_CLOEXEC).mode(mode).build();
    // SAFETY: the path pointer points into the CString's heap buffer, owned by `Open`.
    unsafe { Op::submit(entry, Open { path }) }
}

/// Turns the completion into an owned descriptor.
pub(crate) async fn run(op: Op<Open>) -> io::Result<OwnedFd> {
    let (done, _open) = op.await;
    let fd = done.into_io()?;
    Ok(crate::sys::owned_fd(fd as i32))
}
