//! Optional background warm-up: worker threads load the most recently active groups
//! first. Reads never wait for it; it only saves them a catch-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::engine::Engine;

/// A running warm-up. Dropping it stops the workers after their current group.
#[derive(Debug)]
pub struct Warmup {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    total: usize,
    workers: Vec<JoinHandle<()>>,
}

impl Warmup {
    /// Groups loaded so far.
    pub fn loaded(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Groups it will load in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Asks the workers to stop and waits for them.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.join_workers();
        self.loaded()
    }

    /// Waits until every group is loaded (or the warm-up was stopped).
    pub fn wait(mut self) -> usize {
        self.join_workers();
        self.loaded()
    }

    fn join_workers(&mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Warmup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join_workers();
    }
}

impl Engine {
    /// Starts loading up to `limit` groups (all when `None`) on `threads` worker
    /// threads, most recently active first, in every projection.
    pub fn warm_up(&self, threads: usize, limit: Option<usize>) -> Warmup {
        let mut groups = self.store().groups();
        groups.sort_by_key(|g| std::cmp::Reverse(g.head));
        groups.truncate(limit.unwrap_or(usize::MAX));
        let total = groups.len();
        let (tx, rx) = crossbeam_channel::bounded::<u32>(1_024);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (engine, rx, stop, done) = (self.clone(), rx.clone(), stop.clone(), done.clone());
            let spawned = std::thread::Builder::new().name(format!("highwater-warmup-{i}")).spawn(move || {
                for no in rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(error) = engine.load_group_no(no) {
                        tracing::warn!(group = no, %error, "warm-up could not load a group; its reads will report it");
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1_000 == 0 || n == total {
                        tracing::info!(loaded = n, total, millis = started.elapsed().as_millis() as u64, "warm-up progress");
                    }
                }
            });
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(error) => tracing::warn!(%error, "could not start a warm-up worker"),
            }
        }
        let feeder_stop = stop.clone();
        let feeder = std::thread::Builder::new()
            .name("highwater-warmup-feed".into())
            .spawn(move || {
                for g in groups {
                    if feeder_stop.load(Ordering::Relaxed) || tx.send(g.no).is_err() {
                        break;
                    }
                }
            });
        match feeder {
            Ok(handle) => workers.push(handle),
            Err(error) => tracing::warn!(%error, "could not start the warm-up feeder"),
        }
        Warmup {
            stop,
            done,
            total,
            workers,
        }
    }
}
