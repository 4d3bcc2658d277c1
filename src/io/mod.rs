//! File operations through the current shard's io_uring, in the owned-buffer style: a read takes
//! a `Vec<u8>` and hands it back with the result, so no buffer is ever borrowed by the kernel.
//!
//! Every function here must run inside a shard task; off a shard it fails with
//! [`NotOnShard`] (as an `io::Error` of kind `Other`).

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::driver::op::{self, close, open, read, statx, timeout};

pub use op::NotOnShard;

fn not_on_shard(e: NotOnShard) -> io::Error {
    io::Error::other(e)
}

/// A file opened through the ring. Dropping it closes the descriptor synchronously; call
/// [`File::close`] to close through the ring instead.
#[derive(Debug)]
pub struct File {
    fd: OwnedFd,
}

impl File {
    /// Opens `path` read-only.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("path {} contains a NUL byte", path.display()))
        })?;
        let op = open::open(c, libc::O_RDONLY, 0).map_err(not_on_shard)?;
        Ok(File { fd: open::run(op).await? })
    }

    /// Opens `path` read-only like [`File::open`], but when the process is out of descriptors
    /// (`EMFILE`/`ENFILE`: other reads in flight hold them) waits for one to be closed and tries
    /// again, for up to `patience`; then the error comes back as it is. A loader with more reads
    /// in flight than its descriptor limit allows thus slows down instead of failing files.
    pub async fn open_patiently(path: impl AsRef<Path>, patience: Duration) -> io::Result<File> {
        let path = path.as_ref();
        let start = std::time::Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            match File::open(path).await {
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) && start.elapsed() < patience =>
                {
                    crate::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    /// Reads up to `buf.capacity() - buf.len()` bytes at `offset`, appending them to `buf`.
    /// Returns the byte count (0 at end of file) and the buffer.
    pub async fn read_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        match read::read_at(self.fd.as_raw_fd(), buf, offset) {
            Ok(op) => read::run(op).await,
            Err(e) => (Err(not_on_shard(e)), Vec::new()),
        }
    }

    /// The file's size in bytes (statx).
    pub async fn size(&self) -> io::Result<u64> {
        let op = statx::statx(self.fd.as_raw_fd()).map_err(not_on_shard)?;
        statx::run(op).await
    }

    /// The file's size in bytes now (fstat: never waits for I/O, unlike [`File::size`]'s statx,
    /// which the kernel hands to a worker thread).
    pub fn size_now(&self) -> io::Result<u64> {
        crate::sys::fstat_size(self.fd.as_raw_fd())
    }

    /// Reads the whole file into a new buffer. Stops at end of file, or once the size the file had
    /// when the read started has been read (bytes appended meanwhile are not read).
    pub async fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let (res, buf) = self.read_to_end_into(Vec::new()).await;
        res.map(|()| buf)
    }

    /// Like [`File::read_to_end`], into `buf` (cleared first, grown as needed), which comes back
    /// either way: reusing buffers avoids faulting fresh pages in for every file.
    pub async fn read_to_end_into(&self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        buf.clear();
        // fstat, not the ring's statx: the size is only a hint here, and statx always goes to an
        // io-wq worker while fstat on an open descriptor is fast and never waits for I/O.
        let size = match crate::sys::fstat_size(self.fd.as_raw_fd()) {
            Ok(s) => s,
            Err(e) => return (Err(e), buf),
        };
        buf.reserve(usize::try_from(size).unwrap_or(usize::MAX).max(1));
        loop {
            if buf.len() == buf.capacity() {
                buf.reserve(4096);
            }
            // read_at appends at buf.len(), which is also the file offset reached so far.
            let offset = buf.len() as u64;
            let (res, b) = self.read_at(buf, offset).await;
            buf = b;
            match res {
                Ok(0) => return (Ok(()), buf),
                Ok(_) if buf.len() as u64 >= size => return (Ok(()), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }

    /// Closes the descriptor through the ring and reports the kernel's verdict.
    pub async fn close(self) -> io::Result<()> {
        match close::close(self.fd) {
            Ok(op) => close::run(op).await,
            Err((_fd, e)) => Err(not_on_shard(e)), // `_fd` drops here and closes synchronously
        }
    }
}

/// Reads a whole file, like `std::fs::read`, through the ring.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let (res, buf) = read_into(path, Vec::new()).await;
    res.map(|()| buf)
}

/// Reads a whole file into `buf` (cleared first), which comes back either way. A loader that
/// recycles its buffers this way reads from the page cache without faulting in fresh memory.
pub async fn read_into(path: impl AsRef<Path>, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    let f = match File::open(path).await {
        Ok(f) => f,
        Err(e) => return (Err(e), buf),
    };
    let (res, buf) = f.read_to_end_into(buf).await;
    let closed = f.close().await;
    (res.and(closed), buf)
}

/// Why [`read_limited`] returned no bytes.
#[derive(Debug, thiserror::Error)]
pub enum ReadLimitedError {
    /// Opening, sizing, reading or closing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is larger than the caller accepts; nothing was read.
    #[error("{size} bytes is more than the {limit}-byte limit per file")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit given.
        limit: u64,
    },
}

/// Reads a whole file like [`read`], refusing one over `max_bytes` before reading any of it, and
/// waiting up to `patience` for a free descriptor ([`File::open_patiently`]).
pub async fn read_limited(
    path: impl AsRef<Path>,
    max_bytes: u64,
    patience: Duration,
) -> Result<Vec<u8>, ReadLimitedError> {
    let f = File::open_patiently(path, patience).await?;
    let size = f.size_now()?;
    if size > max_bytes {
        let _ = f.close().await;
        return Err(ReadLimitedError::TooLarge { size, limit: max_bytes });
    }
    let (res, buf) = f.read_to_end_into(Vec::new()).await;
    let closed = f.close().await;
    res.and(closed)?;
    Ok(buf)
}

/// Waits `d` with an `IORING_OP_TIMEOUT` (a kernel timer; [`crate::time::sleep`] is the cheaper
/// user-space timer for most uses). With the fallback driver it is [`crate::time::sleep`].
pub async fn uring_timeout(d: Duration) -> io::Result<()> {
    if crate::runtime::context::with_driver(|dr| dr.mode().is_uring()) == Some(false) {
        crate::time::sleep(d).await;
        return Ok(());
    }
    let op = timeout::timeout(d).map_err(not_on_shard)?;
    timeout::run(op).await
}
