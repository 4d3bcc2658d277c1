use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;
use std::task::{Context, Poll, Waker};
use std::future::Future;
fn main() {
    thread_local! { static Q: RefCell<VecDeque<async_task::Runnable>> = RefCell::new(VecDeque::new()); }
    let n = 5_000_000u64;
    // 1. spawn + run + await output through Task, trivial executor
    let schedule = |r| Q.with(|q| q.borrow_mut().push_back(r));
    let t = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        let (r, mut task) = async_task::spawn_local(async move { std::hint::black_box(i) }, schedule);
        r.schedule();
        let run = Q.with(|q| q.borrow_mut().pop_front()).unwrap();
        run.run();
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(v) = std::pin::Pin::new(&mut task).poll(&mut cx) { sum += v; }
    }
    println!("async-task spawn_local+run+poll Task (no waker registration): {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    // 2. with detach and an Rc<Cell> output
    let t = Instant::now();
    for i in 0..n {
        let out = Rc::new(std::cell::Cell::new(0));
        let o = out.clone();
        let (r, task) = async_task::spawn_local(async move { o.set(std::hint::black_box(i)) }, schedule);
        task.detach();
        r.schedule();
        let run = Q.with(|q| q.borrow_mut().pop_front()).unwrap();
        run.run();
        sum += out.get();
    }
    println!("async-task spawn_local+detach+run: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    // 3. plain Box<dyn Future> alloc + poll, no async-task
    let t = Instant::now();
    for i in 0..n {
        let mut f: std::pin::Pin<Box<dyn Future<Output = u64>>> = Box::pin(async move { std::hint::black_box(i) });
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { sum += v; }
    }
    println!("Box::pin + poll (allocation floor): {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    // 4. spawn + await from an outer task, on a trivial executor: the same pattern as the bench
    let t = Instant::now();
    let (outer_r, outer) = async_task::spawn_local(async move {
        let mut s = 0u64;
        for i in 0..n {
            let (r, task) = async_task::spawn_local(async move { std::hint::black_box(i) }, schedule);
            r.schedule();
            s += task.await;
        }
        s
    }, schedule);
    outer_r.schedule();
    while let Some(r) = Q.with(|q| q.borrow_mut().pop_front()) { r.run(); }
    let mut cx = Context::from_waker(Waker::noop());
    let mut outer = outer;
    if let Poll::Ready(v) = std::pin::Pin::new(&mut outer).poll(&mut cx) { sum += v; }
    println!("async-task spawn + await from a task, trivial executor: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    std::hint::black_box(sum);
}
