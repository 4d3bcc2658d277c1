//! `IORING_OP_STATX` on an open descriptor: the file's size.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::{NotOnShard, Op, syscall_result};

/// The kernel writes the result into this heap box.
#[derive(Debug)]
pub(crate) struct Statx {
    buf: Box<libc::statx>,
}

static EMPTY_PATH: &std::ffi::CStr = c"";

/// Starts a statx of `fd` (`AT_EMPTY_PATH`) asking for the size.
pub(crate) fn statx(fd: RawFd) -> Result<Op<Statx>, NotOnShard> {
    // SAFETY: `statx` is a plain C struct of integers; all-zero is a valid value.
    let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let ptr: *mut libc::statx = &mut *buf;
    let entry = opcode::Statx::new(types::Fd(fd), EMPTY_PATH.as_ptr(), ptr.cast())
        .flags(libc::AT_EMPTY_PATH)
        .mask(libc::STATX_SIZE)
        .build();
    let sync = move |s: &mut Statx| {
        let buf: *mut libc::statx = &mut *s.buf;
        // SAFETY: a static empty path (AT_EMPTY_PATH: `fd` itself) and a live, writable statx box.
        let rc = unsafe { libc::statx(fd, EMPTY_PATH.as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_SIZE, buf) };
        syscall_result(rc as isize)
    };
    // SAFETY: the path is a static; the statx pointer points into the box owned by `Statx`.
    unsafe { Op::submit(entry, Statx { buf }, sync) }
}

/// Waits for the statx and returns the size in bytes.
pub(crate) async fn run(op: Op<Statx>) -> io::Result<u64> {
    let (done, Statx { buf }) = op.await;
    done.into_io()?;
    Ok(buf.stx_size)
}
