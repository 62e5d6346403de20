//! The memory limit of one instance: all its linear memories together, as
//! a component may have several.

/// Table elements one table may have (function references; a few
/// thousand in real guests): bounds what tables can cost the host.
const MAX_TABLE_ELEMENTS: usize = 64 << 10;

/// Counts the instance's linear memory and refuses growth past the limit.
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            used: 0,
            refused: None,
        }
    }

    /// A new limit, for the next task of a reused instance.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.refused = None;
    }

    /// The total the guest asked for when it was refused, if it was.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(desired.saturating_sub(current));
        if total > self.limit {
            self.refused = Some(total);
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

    fn instances(&self) -> usize {
        16
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
}
