//! The WebAssembly sandbox: one engine per process, a linker with WASI denied
//! by default, compiled components cached on disk, and a fresh store per task.

mod cache;
mod command;
mod component;
mod engine;
mod handler;
mod outcome;
mod pool;

pub use cache::CompileSource;
pub use command::{CommandComponent, CommandOutput};
pub use component::{ActionComponent, ActionInfo, ComponentError};
pub use engine::{SandboxConfig, default_cache_dir};
pub(crate) use handler::Handler;
pub(crate) use outcome::{GuestStop, invoke, memory_limit};
pub(crate) use pool::{InstancePool, WarmInstance};

use crate::host::{self, InstanceState};
use std::sync::{Arc, OnceLock};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};

/// The engine, linker and compile cache shared by every task of a process.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<InstanceState>,
    cache: Option<cache::CompileCache>,
    pooling: bool,
    config: SandboxConfig,
    /// Linear memory of all its instances together.
    memory: Arc<crate::host::MemoryBudget>,
    _ticker: engine::EpochTicker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pooling", &self.pooling)
            .field("config", &self.config)
            .finish()
    }
}

impl Sandbox {
    /// The process-wide sandbox with default settings.
    pub fn shared() -> anyhow::Result<Arc<Sandbox>> {
        Self::shared_for(false)
    }

    /// The process-wide sandbox, with fuel metering if `fuel` (a second
    /// engine: fuel changes the compiled code).
    pub fn shared_for(fuel: bool) -> anyhow::Result<Arc<Sandbox>> {
        static SHARED: [OnceLock<Arc<Sandbox>>; 2] = [OnceLock::new(), OnceLock::new()];
        let slot = &SHARED[usize::from(fuel)];
        if let Some(sandbox) = slot.get() {
            return Ok(sandbox.clone());
        }
        let config = SandboxConfig {
            fuel,
            ..SandboxConfig::default()
        };
        let sandbox = Arc::new(Sandbox::new(config)?);
        Ok(slot.get_or_init(|| sandbox).clone())
    }

    /// A sandbox with its own engine. Prefer [`Sandbox::shared`]: one engine
    /// per process shares compiled code and the epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let (engine, pooling) = engine::create_engine(&config)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let cache = config
            .cache_dir
            .clone()
            .map(|dir| cache::CompileCache::new(&engine, dir));
        let ticker = engine::EpochTicker::start(&engine, config.epoch_tick);
        Ok(Sandbox {
            engine,
            linker,
            cache,
            pooling,
            memory: crate::host::MemoryBudget::new(config.max_total_memory_bytes),
            config,
            _ticker: ticker,
        })
    }

    /// True if the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The settings this sandbox was made with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Reads, checks and compiles the action component at `path`, off the
    /// async worker threads.
    pub async fn load_component(
        self: &Arc<Self>,
        path: &std::path::Path,
    ) -> Result<ActionComponent, ComponentError> {
        let sandbox = self.clone();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || component::load(&sandbox, &path))
            .await
            .expect("loading a component panicked")
    }

    /// As [`Sandbox::load_component`], from a thread that may block.
    pub(crate) fn load_component_blocking(
        self: &Arc<Self>,
        path: &std::path::Path,
    ) -> Result<ActionComponent, ComponentError> {
        component::load(self, path)
    }

    /// A fresh store for one task, armed with the task's limits.
    pub(crate) fn new_store(&self, mut state: InstanceState) -> Store<InstanceState> {
        if self.config.enforce_limits {
            state.limiter().share(self.memory.clone());
        }
        let mut store = Store::new(&self.engine, state);
        if self.config.enforce_limits {
            store.limiter(|state| state.limiter());
        }
        self.arm(&mut store);
        store
    }

    /// Gives the store's current task its CPU budget and fuel (again, for a
    /// reused instance).
    pub(crate) fn arm(&self, store: &mut Store<InstanceState>) {
        if !self.config.enforce_limits {
            return;
        }
        let limits = store.data().task.input.limits;
        if self.config.fuel {
            // Without a fuel limit, fuel is still metered: give it all.
            let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        }
        let tick = self.config.epoch_tick.as_millis().max(1) as u64;
        let mut ticks_left = (limits.cpu_ms / tick).max(1);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if ticks_left == 0 {
                return Err(wasmtime::Error::new(CpuLimitExceeded));
            }
            ticks_left -= 1;
            // Yield at every tick, so a busy guest lets other tasks of this
            // thread run.
            Ok(UpdateDeadline::Yield(1))
        });
    }
}

/// The error a task's store raises when its CPU budget runs out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("CPU time limit exceeded")]
pub struct CpuLimitExceeded;

/// Measurements of the sandbox's parts, for the benchmark's account of where
/// a task's time goes. Not a stable API.
#[doc(hidden)]
pub mod probe {
    use super::*;
    use crate::host::bindings::weir::agent::types::Event as WitEvent;
    use std::time::{Duration, Instant};

    fn event() -> WitEvent {
        WitEvent {
            id: "probe".into(),
            event_type: "_input_event".into(),
            key: "k".into(),
            payload: "{\"text\":\"the quick brown fox\"}".into(),
            upstream_id: None,
            attributes: Vec::new(),
        }
    }

    fn store(component: &ActionComponent) -> Store<InstanceState> {
        let sandbox = &component.sandbox;
        let input = crate::host::TaskInput {
            action_name: std::sync::Arc::from("probe"),
            grants: std::sync::Arc::new(crate::host::Grants::action_default()),
            key: "k".into(),
            event_id: "probe".into(),
            limits: crate::limits::Limits {
                max_emits: usize::MAX,
                ..Default::default()
            },
            ..crate::host::TaskInput::idle()
        };
        let state =
            InstanceState::new(input).unwrap_or_else(|_| unreachable!("no dirs are granted"));
        sandbox.new_store(state)
    }

    async fn handle(
        handler: &Handler,
        store: &mut Store<InstanceState>,
        action: &str,
        event: &WitEvent,
    ) -> anyhow::Result<()> {
        handler
            .call(store, action, event)
            .await?
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
    }

    /// Time for `n` fresh stores with an instance each, no call.
    pub async fn instantiate(component: &ActionComponent, n: u32) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let mut store = store(component);
            component.instantiate_handler(&mut store).await?;
        }
        Ok(start.elapsed())
    }

    /// Time for `n` calls of `action` on one warm instance (emitted events
    /// are dropped between calls).
    pub async fn warm_calls(
        component: &ActionComponent,
        action: &str,
        n: u32,
    ) -> anyhow::Result<Duration> {
        let mut store = store(component);
        let instance = component.instantiate_handler(&mut store).await?;
        let event = event();
        let start = Instant::now();
        for _ in 0..n {
            handle(&instance, &mut store, action, &event).await?;
            store.data_mut().task.emitted.clear();
        }
        Ok(start.elapsed())
    }

    /// Time for `n` full tasks: fresh store, instance and call each.
    pub async fn fresh_tasks(
        component: &ActionComponent,
        action: &str,
        n: u32,
    ) -> anyhow::Result<Duration> {
        let event = event();
        let start = Instant::now();
        for _ in 0..n {
            let mut store = store(component);
            let instance = component.instantiate_handler(&mut store).await?;
            handle(&instance, &mut store, action, &event).await?;
        }
        Ok(start.elapsed())
    }

    /// Time for `n` task stores (WASI context, limits) without instantiating.
    pub fn stores(component: &ActionComponent, n: u32) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            drop(store(component));
        }
        start.elapsed()
    }
}
