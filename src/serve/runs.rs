//! The runs a service knows: those submitted and not yet ended, and the
//! latest ended ones with what they released, so a client can wait for an
//! input's outputs or ask how its run stands.

use crate::runtime::RunReport;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

pub(crate) struct RunBook {
    book: Mutex<Book>,
    /// Wakes waiters whenever a run ends.
    ended: Notify,
    /// Ended runs kept.
    capacity: usize,
}

#[derive(Default)]
struct Book {
    pending: HashSet<String>,
    done: HashMap<String, Arc<RunReport>>,
    /// Ended runs, oldest first, to forget beyond capacity.
    order: VecDeque<String>,
}

/// How a run stands.
pub(crate) enum Status {
    Done(Arc<RunReport>),
    Pending,
    Unknown,
}

impl RunBook {
    pub(crate) fn new(capacity: usize) -> RunBook {
        RunBook {
            book: Mutex::default(),
            ended: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Run `id` is about to be submitted (before it can end); false if a
    /// run of that id was pending already (a client reusing an id).
    pub(crate) fn submitted(&self, id: &str) -> bool {
        self.book
            .lock()
            .expect("run book lock")
            .pending
            .insert(id.to_string())
    }

    /// Run `id` was not taken after all.
    pub(crate) fn withdrawn(&self, id: &str) {
        self.book.lock().expect("run book lock").pending.remove(id);
    }

    /// A run ended.
    pub(crate) fn ended(&self, report: RunReport) {
        let mut book = self.book.lock().expect("run book lock");
        book.pending.remove(&report.run);
        let id = report.run.clone();
        if book.done.insert(id.clone(), Arc::new(report)).is_none() {
            book.order.push_back(id);
        }
        while book.order.len() > self.capacity {
            if let Some(old) = book.order.pop_front() {
                book.done.remove(&old);
            }
        }
        drop(book);
        self.ended.notify_waiters();
    }

    pub(crate) fn status(&self, id: &str) -> Status {
        let book = self.book.lock().expect("run book lock");
        if let Some(report) = book.done.get(id) {
            return Status::Done(report.clone());
        }
        if book.pending.contains(id) {
            return Status::Pending;
        }
        Status::Unknown
    }

    /// Waits until run `id` has ended or `deadline` passes; how it stands.
    pub(crate) async fn wait(&self, id: &str, deadline: Instant) -> Status {
        loop {
            // Registered before looking, so an end in between still wakes it.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.status(id) {
                Status::Pending => {}
                status => return status,
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Status::Pending;
            };
            if tokio::time::timeout(left, ended).await.is_err() {
                return self.status(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(run: &str) -> RunReport {
        RunReport {
            run: run.into(),
            key: "k".into(),
            outputs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_its_run_ends_and_old_runs_are_forgotten() {
        let book = Arc::new(RunBook::new(2));
        book.submitted("a");
        assert!(matches!(book.status("a"), Status::Pending));
        assert!(matches!(book.status("zz"), Status::Unknown));
        let waiting = book.clone();
        let waiter = tokio::spawn(async move {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            matches!(waiting.wait("a", deadline).await, Status::Done(_))
        });
        tokio::task::yield_now().await;
        book.ended(report("a"));
        assert!(waiter.await.unwrap());
        book.ended(report("b"));
        book.ended(report("c"));
        assert!(
            matches!(book.status("a"), Status::Unknown),
            "forgotten beyond capacity"
        );
        assert!(matches!(book.status("c"), Status::Done(_)));
        // A reused id says so: its caller then withdraws nothing when the
        // second submit is not taken, and the first stays pending.
        assert!(book.submitted("e"));
        assert!(!book.submitted("e"));
        assert!(matches!(book.status("e"), Status::Pending));
        // A deadline passes.
        book.submitted("d");
        let status = book
            .wait("d", Instant::now() + std::time::Duration::from_millis(20))
            .await;
        assert!(matches!(status, Status::Pending));
    }
}
