//! An agent's outputs as the service keeps them: numbered in the order
//! they came out (the number is the Server-Sent Events id a client resumes
//! from; with a journal, the journal's number, which survives restarts),
//! the latest `capacity` of them kept until a client acknowledges them.

use crate::event::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub(crate) struct OutputLog {
    kept: Mutex<Kept>,
    capacity: usize,
    /// The number of the latest output kept (0: none yet), as the streams
    /// are told it.
    latest: watch::Sender<u64>,
    /// No more outputs will come: streams end once they have read all.
    closed: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Kept {
    outputs: VecDeque<(u64, Arc<Event>)>,
    /// The number of the latest output.
    latest: u64,
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
            kept: Mutex::default(),
            capacity: capacity.max(1),
            latest: watch::channel(0).0,
            closed: Default::default(),
        }
    }

    /// Keeps each event as output `number` (numbers grow), or as the next
    /// output when the log numbers them, then wakes the streams once (a
    /// busy agent's outputs reach a stream in batches, not one wake and
    /// one write each). Returns the ids of outputs no longer kept to make
    /// room.
    pub(crate) fn extend(
        &self,
        outputs: impl IntoIterator<Item = (Option<u64>, Arc<Event>)>,
    ) -> Vec<String> {
        let mut kept = self.kept.lock().expect("output log lock");
        let mut dropped = Vec::new();
        for (number, event) in outputs {
            let number = number.unwrap_or(kept.latest + 1).max(kept.latest + 1);
            if kept.outputs.len() >= self.capacity
                && let Some((_, old)) = kept.outputs.pop_front()
            {
                dropped.push(old.id.clone());
            }
            kept.outputs.push_back((number, event));
            kept.latest = number;
        }
        let latest = kept.latest;
        drop(kept);
        self.latest
            .send_if_modified(|told| std::mem::replace(told, latest) != latest);
        dropped
    }

    /// Starts from what a journal kept: outputs numbered up to `numbered`,
    /// and those kept (in number order). Returns the ids of those beyond
    /// capacity, dropped.
    pub(crate) fn restore(&self, numbered: u64, outputs: &[(u64, Event)]) -> Vec<String> {
        let dropped = self.extend(
            outputs
                .iter()
                .map(|(n, event)| (Some(*n), Arc::new(event.clone()))),
        );
        let mut kept = self.kept.lock().expect("output log lock");
        kept.latest = kept.latest.max(numbered);
        let latest = kept.latest;
        drop(kept);
        self.latest.send_replace(latest);
        dropped
    }

    /// Drops the outputs numbered up to `through` (a client has them);
    /// returns their ids.
    pub(crate) fn acknowledge(&self, through: u64) -> Vec<String> {
        let mut kept = self.kept.lock().expect("output log lock");
        let mut dropped = Vec::new();
        while kept.outputs.front().is_some_and(|(n, _)| *n <= through) {
            if let Some((_, event)) = kept.outputs.pop_front() {
                dropped.push(event.id.clone());
            }
        }
        dropped
    }

    /// At most `max` outputs numbered after `position`.
    pub(crate) fn since(&self, position: u64, max: usize) -> Since {
        let kept = &self.kept.lock().expect("output log lock").outputs;
        let first_kept = kept.front().map_or(u64::MAX, |(n, _)| *n);
        // Numbers grow along the log, so the first one after `position` is
        // found by bisection: a reader near the end must not walk every
        // kept output (up to `--kept-outputs`) for each batch it reads.
        let start = kept.partition_point(|(n, _)| *n <= position);
        let outputs: Vec<_> = kept.range(start..).take(max).cloned().collect();
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

    fn output(n: u64) -> Arc<Event> {
        Arc::new(Event::input("k", serde_json::json!(n)))
    }

    #[test]
    fn outputs_are_numbered_and_the_oldest_go_first() {
        let log = OutputLog::new(3);
        let mut dropped = Vec::new();
        for n in 1..=5 {
            dropped.extend(log.extend([(None, output(n))]));
        }
        assert_eq!(dropped.len(), 2);
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
        // A journal's numbers are kept; acknowledged outputs go.
        log.extend([(Some(9), output(9))]);
        assert_eq!(log.latest(), 9);
        assert_eq!(log.acknowledge(5).len(), 2);
        let since = log.since(0, 10);
        assert_eq!(since.outputs[0].0, 9);
        assert_eq!(since.missed, 8);
    }

    #[test]
    fn a_restored_log_goes_on_from_the_journal() {
        let log = OutputLog::new(2);
        let kept = [4, 6, 7].map(|n| (n, (*output(n)).clone()));
        assert_eq!(log.restore(9, &kept).len(), 1, "beyond capacity");
        assert_eq!(log.latest(), 9, "numbered past what is kept");
        log.extend([(None, output(10))]);
        assert_eq!(log.latest(), 10);
    }
}
