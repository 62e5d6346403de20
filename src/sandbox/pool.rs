//! Warm instances kept for reuse by actions whose isolation allows it.

use super::Handler;
use crate::agent::ReuseScope;
use crate::host::InstanceState;
use std::collections::VecDeque;
use std::sync::Mutex;
use wasmtime::Store;

/// An instance with its store, between tasks.
pub(crate) struct WarmInstance {
    pub store: Store<InstanceState>,
    pub instance: Handler,
    /// Tasks it has served.
    pub tasks: u32,
    /// The key it last served.
    pub key: String,
}

/// An action's idle warm instances, oldest first.
pub(crate) struct InstancePool {
    scope: ReuseScope,
    max_tasks: u32,
    capacity: usize,
    idle: Mutex<VecDeque<WarmInstance>>,
}

impl InstancePool {
    /// A pool keeping at most `capacity` idle instances, each serving at most
    /// `max_tasks` tasks.
    pub(crate) fn new(scope: ReuseScope, max_tasks: u32, capacity: usize) -> Self {
        InstancePool {
            scope,
            max_tasks,
            capacity: capacity.max(1),
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// An idle instance that may serve `key`, if there is one.
    pub(crate) fn take(&self, key: &str) -> Option<WarmInstance> {
        let mut idle = self.idle.lock().expect("instance pool lock");
        match self.scope {
            ReuseScope::Any => idle.pop_back(),
            ReuseScope::Key => {
                let at = idle.iter().rposition(|w| w.key == key)?;
                idle.remove(at)
            }
        }
    }

    /// Keeps `instance` for a later task, unless it has served its tasks;
    /// the oldest idle instance makes room when the pool is full.
    pub(crate) fn put(&self, instance: WarmInstance) {
        if instance.tasks >= self.max_tasks {
            return;
        }
        let evicted = {
            let mut idle = self.idle.lock().expect("instance pool lock");
            let evicted = if idle.len() >= self.capacity {
                idle.pop_front()
            } else {
                None
            };
            idle.push_back(instance);
            evicted
        };
        // Dropped outside the lock: returning the slot to the allocator is
        // not free.
        drop(evicted);
    }
}
