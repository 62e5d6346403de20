//! The runs a service knows: those submitted and not yet ended, and the
//! latest ended ones with what they released, so a client can wait for an
//! input's outputs or ask how its run stands.

use crate::event::Event;
use std::collections::{HashMap, VecDeque};
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
    /// Runs taken and not ended: id -> (content digest, sequence number).
    pending: HashMap<String, (u64, u64)>,
    /// Ended runs kept: id -> (how it ended, content digest).
    done: HashMap<String, (Arc<Ended>, u64)>,
    /// Ended runs, oldest first, to forget beyond capacity.
    order: VecDeque<String>,
}

/// A run that ended, as the book keeps it.
#[derive(Debug)]
pub(crate) struct Ended {
    pub key: String,
    /// Its input's sequence number.
    pub seq: u64,
    /// What it released (shared with the output log).
    pub outputs: Vec<Arc<Event>>,
}

/// How a run stands.
pub(crate) enum Status {
    Done(Arc<Ended>),
    Pending,
    Unknown,
}

/// Whether an event's id is known, for a submit.
#[derive(Debug, PartialEq)]
pub(crate) enum Known {
    /// A new run.
    No,
    /// A run of this id and content was taken already: a retried submit.
    Same,
    /// A run of this id was taken for another event.
    Other,
}

impl RunBook {
    pub(crate) fn new(capacity: usize) -> RunBook {
        RunBook {
            book: Mutex::default(),
            ended: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether a run of `id` is pending or kept, and for the same content.
    pub(crate) fn known(&self, id: &str, digest: u64) -> Known {
        let book = self.book.lock().expect("run book lock");
        let known = book
            .pending
            .get(id)
            .map(|(d, _)| *d)
            .or_else(|| book.done.get(id).map(|(_, d)| *d));
        match known {
            None => Known::No,
            Some(known) if known == digest => Known::Same,
            Some(_) => Known::Other,
        }
    }

    /// Run `id` (input `seq`, content `digest`) is taken: pending until it
    /// ends.
    pub(crate) fn submitted(&self, id: &str, digest: u64, seq: u64) {
        let mut book = self.book.lock().expect("run book lock");
        book.pending.insert(id.to_string(), (digest, seq));
    }

    /// Runs ended (each submitted here): they are kept, and their waiters
    /// woken, once for them all. Returns the sequence numbers of the ended
    /// runs no longer kept.
    pub(crate) fn ended(&self, runs: Vec<(String, Ended)>) -> Vec<u64> {
        let mut book = self.book.lock().expect("run book lock");
        let mut forgotten = Vec::new();
        for (id, ended) in runs {
            let digest = book.pending.remove(&id).map_or(0, |(digest, _)| digest);
            self.keep(&mut book, id, ended, digest, &mut forgotten);
        }
        drop(book);
        self.ended.notify_waiters();
        // Freed here, with the lock let go.
        forgotten.into_iter().map(|ended| ended.seq).collect()
    }

    /// A run that ended before a restart, as a journal remembers it (with
    /// its input's content `digest`). Returns the sequence numbers of the
    /// ended runs no longer kept.
    pub(crate) fn remembered(&self, id: String, ended: Ended, digest: u64) -> Vec<u64> {
        let mut book = self.book.lock().expect("run book lock");
        let mut forgotten = Vec::new();
        self.keep(&mut book, id, ended, digest, &mut forgotten);
        drop(book);
        forgotten.into_iter().map(|ended| ended.seq).collect()
    }

    /// Keeps run `id` as ended; the runs forgotten beyond capacity go to
    /// `forgotten`.
    fn keep(
        &self,
        book: &mut Book,
        id: String,
        ended: Ended,
        digest: u64,
        forgotten: &mut Vec<Arc<Ended>>,
    ) {
        if book
            .done
            .insert(id.clone(), (Arc::new(ended), digest))
            .is_none()
        {
            book.order.push_back(id);
        }
        while book.order.len() > self.capacity {
            if let Some(old) = book.order.pop_front()
                && let Some((ended, _)) = book.done.remove(&old)
            {
                forgotten.push(ended);
            }
        }
    }

    pub(crate) fn status(&self, id: &str) -> Status {
        let book = self.book.lock().expect("run book lock");
        if let Some((ended, _)) = book.done.get(id) {
            return Status::Done(ended.clone());
        }
        if book.pending.contains_key(id) {
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

    fn ended(book: &RunBook, run: &str, seq: u64) -> Vec<u64> {
        let ended = Ended {
            key: "k".into(),
            seq,
            outputs: Vec::new(),
        };
        book.ended(vec![(run.into(), ended)])
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_its_run_ends_and_old_runs_are_forgotten() {
        let book = Arc::new(RunBook::new(2));
        book.submitted("a", 7, 1);
        assert!(matches!(book.status("a"), Status::Pending));
        assert!(matches!(book.status("zz"), Status::Unknown));
        let waiting = book.clone();
        let waiter = tokio::spawn(async move {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            matches!(waiting.wait("a", deadline).await, Status::Done(_))
        });
        tokio::task::yield_now().await;
        assert!(ended(&book, "a", 1).is_empty());
        assert!(waiter.await.unwrap());
        assert_eq!(book.known("a", 7), Known::Same, "an ended run is known");
        assert_eq!(book.known("a", 8), Known::Other, "other content");
        ended(&book, "b", 2);
        assert_eq!(ended(&book, "c", 3), [1], "a's input is forgotten");
        assert!(
            matches!(book.status("a"), Status::Unknown),
            "forgotten beyond capacity"
        );
        assert_eq!(book.known("a", 7), Known::No);
        assert!(matches!(book.status("c"), Status::Done(_)));
        // A pending run is known by id and content.
        book.submitted("e", 1, 4);
        assert_eq!(book.known("e", 1), Known::Same);
        assert_eq!(book.known("e", 2), Known::Other);
        // A deadline passes.
        book.submitted("d", 1, 5);
        let status = book
            .wait("d", Instant::now() + std::time::Duration::from_millis(20))
            .await;
        assert!(matches!(status, Status::Pending));
    }
}
