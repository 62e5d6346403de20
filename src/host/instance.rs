//! The data of one instance's store: WASI and wasi:http contexts, the
//! memory limiter, captured output, and the [`Task`] it is running now (a
//! reused instance runs several in turn).

use super::http::HttpPolicy;
use super::wasi::{self, OutputCapture};
use super::{CallError, HostError, MemoryLimiter, Task, TaskInput, bindings, readings};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A task whose WASI context could not be built, with its input back.
pub(crate) struct SetupFailed {
    pub input: TaskInput,
    pub error: anyhow::Error,
}

/// The data of one task's store.
pub struct InstanceState {
    /// Built on the guest's first WASI call when building it cannot fail
    /// (no directories to open, no command input): most actions never make
    /// one, and a context (clocks, random generators, stdio) was a few
    /// percent of a trivial task's CPU.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    http_ctx: WasiHttpCtx,
    http: HttpPolicy,
    limiter: MemoryLimiter,
    stderr: OutputCapture,
    stdout: OutputCapture,
    pub(crate) task: Task,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| {
            let readings = self.task.readings.as_ref();
            wasi::context(
                &self.task.input.grants,
                &self.stdout,
                &self.stderr,
                None,
                readings,
            )
            .unwrap_or_else(|_| unreachable!("deferred only without directories to open"))
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.ready_http();
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl InstanceState {
    /// State for a task with `input`'s grants and limits. Fails only if a
    /// granted directory cannot be opened; the input comes back then.
    pub(crate) fn new(input: TaskInput) -> Result<Self, Box<SetupFailed>> {
        Self::with_io(input, None)
    }

    /// State for running a wasi:cli command with `args` and `stdin`.
    pub(crate) fn for_command(
        input: TaskInput,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<Self, Box<SetupFailed>> {
        Self::with_io(input, Some(wasi::CommandIo { args, stdin }))
    }

    fn with_io(input: TaskInput, io: Option<wasi::CommandIo>) -> Result<Self, Box<SetupFailed>> {
        let stdout = OutputCapture::default();
        let stderr = OutputCapture::default();
        let readings = input
            .journal
            .as_ref()
            .map(|_| readings::SharedReadings::default());
        let wasi = if input.grants.dirs.is_empty() && io.is_none() {
            None
        } else {
            match wasi::context(&input.grants, &stdout, &stderr, io, readings.as_ref()) {
                Ok(wasi) => Some(wasi),
                Err(error) => return Err(Box::new(SetupFailed { input, error })),
            }
        };
        let http = HttpPolicy::prepare(&input.grants);
        let memory_bytes = input.limits.memory_bytes();
        let mut table = ResourceTable::new();
        table.set_max_capacity(input.limits.max_resources);
        let mut task = Task::new(input);
        if let Some(readings) = &readings {
            task.attach_readings(readings);
        }
        Ok(InstanceState {
            wasi,
            table,
            http_ctx: WasiHttpCtx::new(),
            http,
            limiter: MemoryLimiter::new(memory_bytes),
            stderr,
            stdout,
            task,
        })
    }

    /// State for calling a component's `actions` export at plan time, with
    /// `cpu_ms` of CPU time.
    pub(crate) fn describe(cpu_ms: u64) -> Self {
        let mut input = TaskInput::idle();
        input.limits.cpu_ms = cpu_ms;
        InstanceState::new(input).unwrap_or_else(|_| unreachable!("no dirs are granted"))
    }

    /// The task's HTTP hooks, ready to send: what wasi:http and
    /// `weir:agent/fetch` send their requests through.
    pub(super) fn http_policy(&mut self) -> &mut HttpPolicy {
        self.ready_http();
        &mut self.http
    }

    fn ready_http(&mut self) {
        // Derived on the task's first request, not for every task.
        if self.http.idempotency.is_empty() {
            self.http.idempotency = self.task.idempotency_key().to_string();
            self.http.journal = self.task.http_journal();
            self.http.trace = self.task.input.telemetry.as_ref().map(|t| t.cx.clone());
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// What the guest wrote to stderr and stdout since the last call (lossy
    /// UTF-8, the tail of each).
    pub(crate) fn take_output(&self) -> (String, String) {
        (self.stderr.take(), self.stdout.take())
    }

    /// Swaps in the next task of a reused instance; returns the last one,
    /// with the HTTP requests it was refused.
    pub(crate) fn replace_task(&mut self, mut next: Task) -> Task {
        // Before the readings start over for the next task.
        let _ = self.task.check_readings();
        if let Some(readings) = self.task.readings.clone() {
            next.attach_readings(&readings);
        }
        self.limiter.set_limit(next.input.limits.memory_bytes());
        self.table.set_max_capacity(next.input.limits.max_resources);
        let http = std::mem::replace(&mut self.http, HttpPolicy::prepare(&next.input.grants));
        let mut done = std::mem::replace(&mut self.task, next);
        done.take_http_denials(http);
        done
    }

    /// Ends the task: its state, with the HTTP requests it was refused.
    pub(crate) fn into_task(self) -> Task {
        let mut task = self.task;
        task.take_http_denials(self.http);
        let _ = task.check_readings();
        task
    }

    /// The memory limit the guest ran into, if it did.
    pub(crate) fn memory_refused(&self) -> Option<usize> {
        self.limiter.refused()
    }

    /// The sandbox's memory budget, if it refused memory this task's own
    /// limit allowed.
    pub(crate) fn memory_budget_refused(&self) -> Option<usize> {
        self.limiter.refused_by_budget()
    }
}

impl bindings::weir::agent::types::Host for InstanceState {
    /// Where every guest host call's error passes: a limit the task reached
    /// stops the guest (its call traps, so it cannot go on past the limit,
    /// whatever it would do with the error); other errors go to the guest.
    fn convert_host_error(&mut self, error: CallError) -> wasmtime::Result<HostError> {
        match (error.0, &self.task.violation) {
            (HostError::Limit(_), Some(exceeded)) => Err(wasmtime::Error::new(exceeded.clone())),
            (error, _) => Ok(error),
        }
    }
}
