//! The memory limit of one instance: all its linear memories together, as
//! a component may have several; and the sandbox's budget of all instances
//! together, so that many tasks each within their own limit cannot take
//! the host's memory between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Linear memory all instances of a sandbox may hold at once.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(max: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget, in bytes.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Table elements one table may have (function references; a few
/// thousand in real guests): bounds what tables can cost the host.
const MAX_TABLE_ELEMENTS: usize = 64 << 10;

/// Counts the instance's linear memory and refuses growth past the limit.
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    refused: Option<usize>,
    /// The sandbox's budget, once the store is made; and whether it (not
    /// the task's own limit) refused the growth.
    budget: Option<Arc<MemoryBudget>>,
    refused_by_budget: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            used: 0,
            refused: None,
            budget: None,
            refused_by_budget: false,
        }
    }

    /// Charges growth to `budget` too, from now on.
    pub(crate) fn share(&mut self, budget: Arc<MemoryBudget>) {
        self.budget = Some(budget);
    }

    /// The sandbox's budget, if it refused memory the task's own limit
    /// allowed.
    pub(crate) fn refused_by_budget(&self) -> Option<usize> {
        self.budget
            .as_ref()
            .filter(|_| self.refused_by_budget)
            .map(|b| b.max())
    }

    /// A new limit, for the next task of a reused instance.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.refused = None;
        self.refused_by_budget = false;
    }

    /// The total the guest asked for when it was refused, if it was.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl Drop for MemoryLimiter {
    /// The store and its memories are gone: their bytes go back.
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.used);
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.used.saturating_add(growth);
        if total > self.limit {
            self.refused = Some(total);
            return Ok(false);
        }
        if let Some(budget) = &self.budget
            && !budget.take(growth)
        {
            self.refused = Some(total);
            self.refused_by_budget = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    /// Core instances per store: a Rust component links 3 core modules, a
    /// Python one (componentize-py: the interpreter, libc and the app as
    /// modules of their own) about 17.
    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn all_memories_count_together() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(!limiter.memory_growing(30, 50, None).unwrap());
        assert_eq!(limiter.refused(), Some(110));
        assert!(limiter.memory_growing(60, 70, None).unwrap());
        limiter.set_limit(200);
        assert_eq!(limiter.refused(), None);
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = MemoryBudget::new(100);
        let mut a = MemoryLimiter::new(80);
        a.share(budget.clone());
        let mut b = MemoryLimiter::new(80);
        b.share(budget.clone());
        assert!(a.memory_growing(0, 70, None).unwrap());
        // Within b's own limit, but not within what is left of the budget.
        assert!(!b.memory_growing(0, 40, None).unwrap());
        assert_eq!(b.refused_by_budget(), Some(100));
        assert!(b.memory_growing(0, 30, None).unwrap());
        drop(a);
        assert!(b.memory_growing(30, 80, None).unwrap());
        drop(b);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }
}
