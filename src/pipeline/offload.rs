//! The single-loop placement's thread pool for `pipe_blocking` ops, as SPDL's `run_in_executor`:
//! the loop hands a job to an idle pool thread and awaits its result; the pool thread wakes the
//! waiting task through its waker (the shard's remote inbox and doorbell).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::runtime::task_panic_message;
use crate::trace::{TraceBuf, Track};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// A fixed pool of OS threads named `offload-i`.
pub(crate) struct Offload {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Option<Track>>>,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload").field("threads", &self.threads.len()).finish()
    }
}

impl Offload {
    /// `threads` threads; with `trace`, each records a span per job from that epoch.
    pub(crate) fn new(threads: usize, trace: Option<Instant>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), ready: Condvar::new() });
        let mut pool = Offload { shared, threads: Vec::new() };
        for i in 0..threads.max(1) {
            let shared = pool.shared.clone();
            let name = format!("offload-{i}");
            let buf = trace.map(|epoch| TraceBuf::new(name.clone(), epoch));
            let h = std::thread::Builder::new().name(name).spawn(move || worker(&shared, buf))?;
            pool.threads.push(h);
        }
        Ok(pool)
    }

    /// Stops the threads once the queue is empty and hands back their timelines.
    pub(crate) fn shut_down(&mut self) -> Vec<Track> {
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        self.threads.drain(..).filter_map(|t| t.join().ok().flatten()).collect()
    }

    /// Runs `f` on a pool thread; the future yields its value, or the panic message.
    pub(crate) fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> OffloadFuture<R> {
        let slot = Arc::new(Mutex::new(Slot { value: None, waker: None }));
        let done = slot.clone();
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| task_panic_message(&*p));
            let waker = {
                let mut s = done.lock().unwrap_or_else(|e| e.into_inner());
                s.value = Some(r);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        lock(&self.shared.queue).jobs.push_back(job);
        self.shared.ready.notify_one();
        OffloadFuture { slot }
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(shared: &Shared, mut trace: Option<TraceBuf>) -> Option<Track> {
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                if q.closed {
                    return trace.map(TraceBuf::finish);
                }
                q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let start = trace.is_some().then(Instant::now);
        job();
        if let (Some(t), Some(start)) = (trace.as_mut(), start) {
            t.span("job", start, Instant::now(), 1);
        }
    }
}

struct Slot<R> {
    value: Option<Result<R, String>>,
    waker: Option<Waker>,
}

/// The result of an offloaded call.
pub(crate) struct OffloadFuture<R> {
    slot: Arc<Mutex<Slot<R>>>,
}

impl<R> Future for OffloadFuture<R> {
    type Output = Result<R, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.slot);
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_on_a_pool_thread_and_a_panic_comes_back_as_its_message() {
        let pool = Offload::new(2, None).unwrap();
        let name = crate::runtime::block_on(pool.run(|| std::thread::current().name().map(str::to_owned)));
        assert!(name.unwrap().unwrap().starts_with("offload-"));
        let r = crate::runtime::block_on(pool.run(|| -> u32 { panic!("boom") }));
        assert_eq!(r.unwrap_err(), "boom");
    }
}
