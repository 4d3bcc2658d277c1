//! `IORING_OP_READ`: read into an owned buffer at an offset.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::{NotOnShard, Op, syscall_result};

/// The destination buffer; its spare capacity is what the kernel fills.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) buf: Vec<u8>,
}

/// Starts reading up to `buf.capacity() - buf.len()` bytes at `offset`, appended after `buf.len()`.
pub(crate) fn read_at(fd: RawFd, mut buf: Vec<u8>, offset: u64) -> Result<Op<Read>, NotOnShard> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(u32::MAX as usize) as u32;
    let ptr = spare.as_mut_ptr().cast::<u8>();
    let entry = opcode::Read::new(types::Fd(fd), ptr, len).offset(offset).build();
    let sync = move |r: &mut Read| {
        let spare = r.buf.spare_capacity_mut();
        let len = spare.len().min(isize::MAX as usize);
        let offset = libc::off_t::try_from(offset).unwrap_or(libc::off_t::MAX);
        // SAFETY: pread writes at most `len` bytes into the Vec's spare capacity, which is
        // allocated and exclusively borrowed here; `run` extends the length over what it wrote.
        syscall_result(unsafe { libc::pread(fd, spare.as_mut_ptr().cast(), len, offset) })
    };
    // SAFETY: the pointer points into the Vec's heap buffer, owned by `Read`; moving the Vec
    // does not move its heap buffer, and nothing resizes it while the op is in flight.
    unsafe { Op::submit(entry, Read { buf }, sync) }
}

/// Waits for the read; on success the bytes read are appended to the buffer's length.
pub(crate) async fn run(op: Op<Read>) -> (io::Result<usize>, Vec<u8>) {
    let (done, Read { mut buf }) = op.await;
    match done.into_io() {
        Ok(n) => {
            let n = n as usize;
            let new_len = buf.len() + n;
            debug_assert!(new_len <= buf.capacity());
            set_len_after_kernel_write(&mut buf, new_len);
            (Ok(n), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// Extends `buf` over bytes the kernel reported as written.
fn set_len_after_kernel_write(buf: &mut Vec<u8>, new_len: usize) {
    assert!(new_len <= buf.capacity(), "kernel reported more bytes than the buffer holds");
    // SAFETY: the kernel's completion says it wrote `new_len - len` bytes into the spare
    // capacity starting at `len`, so `[0, new_len)` is initialised; the assert bounds it.
    unsafe { buf.set_len(new_len) };
}
