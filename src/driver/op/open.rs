//! `IORING_OP_OPENAT`: open a path relative to the current directory.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use io_uring::{opcode, types};

use super::{NotOnShard, Op, syscall_result};

/// The path, kept alive until the kernel has read it.
#[derive(Debug)]
pub(crate) struct Open {
    path: CString,
}

/// Starts opening `path` with `flags` (always `O_CLOEXEC`) and `mode`.
pub(crate) fn open(path: CString, flags: i32, mode: u32) -> Result<Op<Open>, NotOnShard> {
    let entry =
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).flags(flags | libc::O_CLOEXEC).mode(mode).build();
    let sync = move |o: &mut Open| {
        // SAFETY: a NUL-terminated path that lives across the call; open takes no other pointer.
        syscall_result(unsafe { libc::open(o.path.as_ptr(), flags | libc::O_CLOEXEC, mode) } as isize)
    };
    // SAFETY: the path pointer points into the CString's heap buffer, owned by `Open`.
    unsafe { Op::submit(entry, Open { path }, sync) }.map(|op| op.on_orphan(close_orphan))
}

/// An open that succeeded after its future was dropped: nobody owns the descriptor, so close it.
fn close_orphan(result: i32) {
    if result >= 0 {
        drop(crate::sys::owned_fd(result));
    }
}

/// Turns the completion into an owned descriptor.
pub(crate) async fn run(op: Op<Open>) -> io::Result<OwnedFd> {
    let (done, _open) = op.await;
    let fd = done.into_io()?;
    Ok(crate::sys::owned_fd(fd as i32))
}
