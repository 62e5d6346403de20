//! The wasmtime engine: its configuration, the pooling allocator with its
//! fallback, and the epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Settings of the sandbox that every task shares.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Try the pooling allocator (falls back to on-demand allocation when the
    /// address space cannot be reserved).
    pub pooling: bool,
    /// Component instances the pool holds; must cover the tasks that run at
    /// once.
    pub max_instances: u32,
    /// The most linear memory any one memory may have, in bytes: the ceiling
    /// for actions' `memory_mb` limits.
    pub max_memory_bytes: usize,
    /// Interval of the epoch ticker that interrupts guest code.
    pub epoch_tick: Duration,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Meter fuel, so that actions may set a `fuel` limit (slows guest code).
    pub fuel: bool,
    /// Enforce tasks' memory, CPU and fuel limits. Turn off only to measure
    /// what the limits cost: guests can then run and grow without bound.
    pub enforce_limits: bool,
    /// Largest component file weir reads and compiles, in bytes.
    pub max_component_bytes: u64,
    /// Linear memory all instances may hold at once, in bytes (default:
    /// half the machine's memory): each task's `memory_mb` bounds one
    /// instance, this all of them, however many run or wait warm.
    pub max_total_memory_bytes: usize,
    /// Most functions (in all its core modules) a component may define:
    /// compiling takes time and memory per function, so a component made
    /// of a million tiny functions is refused before it is compiled.
    pub max_component_functions: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            pooling: true,
            max_instances: 1024,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(10),
            cache_dir: default_cache_dir(),
            fuel: false,
            enforce_limits: true,
            max_total_memory_bytes: half_the_memory(),
            max_component_bytes: 256 << 20,
            max_component_functions: 100_000,
        }
    }
}

/// Half the machine's memory (`MemTotal` of /proc/meminfo), else 8 GiB.
fn half_the_memory() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        });
    match total_kib {
        Some(kib) => kib.saturating_mul(1024) / 2,
        None => 8 << 30,
    }
}

/// `$WEIR_CACHE_DIR`, else the user's cache dir + `weir/components`.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("WEIR_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(std::path::PathBuf::from(dir).join("components")),
        None => dirs::cache_dir().map(|d| d.join("weir").join("components")),
    }
}

/// Every engine setting that affects compiled code lives here, so that the
/// compile cache's compatibility key covers all of them.
pub(crate) fn compiler_config(sandbox: &SandboxConfig) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Actions are synchronous guest code behind async host calls: without
    // WASI P3's concurrency machinery, component calls are several times cheaper.
    config.concurrency_support(false);
    config.epoch_interruption(sandbox.enforce_limits);
    config.consume_fuel(sandbox.fuel && sandbox.enforce_limits);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

fn pooling(config: &SandboxConfig) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    let instances = config.max_instances;
    pool.total_component_instances(instances)
        // A Rust guest is one core instance plus small adapter/shim instances.
        .total_core_instances(instances * 4)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(config.max_memory_bytes)
        // Reset a released slot by rewriting only the pages the guest dirtied
        // (found with Linux's PAGEMAP_SCAN where the kernel has it) instead of
        // madvise: no page faults on reuse and no TLB-shootdown IPIs, which
        // dominated the cost of a fresh instance per task.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(64 << 10);
    pool
}

/// Creates the engine: pooling allocator when possible, on-demand otherwise.
pub(crate) fn create_engine(config: &SandboxConfig) -> anyhow::Result<(Engine, bool)> {
    if config.pooling {
        let mut with_pool = compiler_config(config);
        with_pool.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
        match Engine::new(&with_pool) {
            Ok(engine) => return Ok((engine, true)),
            Err(e) => tracing::warn!(
                error = %e,
                "pooling allocator unavailable (address space short?); using on-demand allocation"
            ),
        }
    }
    Ok((Engine::new(&compiler_config(config))?, false))
}

/// Increments the engine's epoch on a fixed interval until dropped. One per
/// engine: guest deadlines are counted in its ticks.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
