//! An agent's outputs as the service keeps them: numbered in the order
//! they came out (the number is the Server-Sent Events id a client resumes
//! from), the latest `capacity` of them kept.

use crate::event::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub(crate) struct OutputLog {
    kept: Mutex<VecDeque<(u64, Arc<Event>)>>,
    capacity: usize,
    /// The number of the latest output (0: none yet).
    latest: watch::Sender<u64>,
    /// No more outputs will come: streams end once they have read all.
    closed: std::sync::atomic::AtomicBool,
}

/// Outputs after a position, and whether some were no longer kept.
pub(crate) struct Since {
    pub outputs: Vec<(u64, Arc<Event>)>,
    /// Outputs between the position asked for and the first returned that
    /// were dropped to keep within capacity.
    pub missed: u64,
}

impl OutputLog {
    pub(crate) fn new(capacity: usize) -> OutputLog {
        OutputLog {
            kept: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            latest: watch::channel(0).0,
            closed: Default::default(),
        }
    }

    /// Keeps `event` as the next output.
    pub(crate) fn push(&self, event: Event) {
        let mut kept = self.kept.lock().expect("output log lock");
        let number = kept.back().map_or(*self.latest.borrow(), |(n, _)| *n) + 1;
        if kept.len() == self.capacity {
            kept.pop_front();
        }
        kept.push_back((number, Arc::new(event)));
        drop(kept);
        self.latest.send_replace(number);
    }

    /// At most `max` outputs numbered after `position`.
    pub(crate) fn since(&self, position: u64, max: usize) -> Since {
        let kept = self.kept.lock().expect("output log lock");
        let first_kept = kept.front().map_or(u64::MAX, |(n, _)| *n);
        let outputs: Vec<_> = kept
            .iter()
            .filter(|(n, _)| *n > position)
            .take(max)
            .cloned()
            .collect();
        let missed = match outputs.first() {
            Some((n, _)) if first_kept == *n => n - position - 1,
            _ => 0,
        };
        Since { outputs, missed }
    }

    /// Wakes on every new output.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Says no more outputs will come, and wakes the streams.
    pub(crate) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.latest.send_modify(|_| {});
    }

    /// Whether [`OutputLog::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The number of the latest output.
    pub(crate) fn latest(&self) -> u64 {
        *self.latest.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(n: u64) -> Event {
        Event::input("k", serde_json::json!(n))
    }

    #[test]
    fn outputs_are_numbered_and_the_oldest_go_first() {
        let log = OutputLog::new(3);
        for n in 1..=5 {
            log.push(output(n));
        }
        assert_eq!(log.latest(), 5);
        let since = log.since(0, 10);
        let numbers: Vec<u64> = since.outputs.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert_eq!(since.missed, 2, "1 and 2 were dropped");
        let since = log.since(3, 10);
        assert_eq!(since.outputs.len(), 2);
        assert_eq!(since.missed, 0);
        assert!(log.since(5, 10).outputs.is_empty());
        assert_eq!(log.since(0, 1).outputs.len(), 1);
    }
}
