//! wasi:cli command components that a skill carries (where Agent Skills
//! run `scripts/` in a shell, weir runs sandboxed commands): run with
//! arguments and stdin under the skill's grants and limits; stdout, stderr
//! and the exit code come back.

use super::component::{ComponentError, compile};
use super::{GuestStop, Sandbox, invoke};
use crate::host::{InstanceState, TaskInput};
use std::path::Path;
use std::sync::Arc;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

/// A checked, compiled command component.
pub struct CommandComponent {
    pre: CommandPre<InstanceState>,
    sandbox: Arc<Sandbox>,
}

/// What a command run produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutput {
    /// The exit code: 0 for success, 1 for failure (wasi:cli 0.2's exit
    /// carries no other codes).
    pub exit_code: i32,
    /// The last 16 KiB of stdout.
    pub stdout: String,
    /// The last 16 KiB of stderr.
    pub stderr: String,
}

impl Sandbox {
    /// Loads a wasi:cli command component.
    pub fn load_command(self: &Arc<Self>, path: &Path) -> Result<CommandComponent, ComponentError> {
        let (_, _, instance_pre) = compile(self, path)?;
        let pre = CommandPre::new(instance_pre).map_err(|e| ComponentError::Exports {
            path: path.to_path_buf(),
            message: format!("not a wasi:cli command: {e:#}"),
        })?;
        Ok(CommandComponent {
            pre,
            sandbox: self.clone(),
        })
    }
}

impl CommandComponent {
    /// Runs the command once in a fresh instance with `input`'s grants and
    /// limits. A trap or a limit is an error; an exit code is an output.
    pub(crate) async fn run(
        &self,
        input: TaskInput,
        args: Vec<String>,
        stdin: String,
    ) -> Result<CommandOutput, String> {
        let state = InstanceState::for_command(input, args, stdin.into_bytes())
            .map_err(|failed| format!("{:#}", failed.error))?;
        let mut store = self.sandbox.new_store(state);
        let outcome = invoke(&mut store, async |store| {
            let command = self.pre.instantiate_async(&mut *store).await?;
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                // `exit(n)` ends the command with its code; it is no trap.
                Err(error) => match error.downcast_ref::<I32Exit>() {
                    Some(exit) => Ok(exit.0),
                    None => Err(error),
                },
            }
        })
        .await;
        let (stderr, stdout) = store.data().take_output();
        let exit_code = outcome.map_err(|stop| match stop {
            GuestStop::Limit(exceeded) => format!("stopped: {exceeded}"),
            GuestStop::Trap { message, .. } => {
                format!("trapped: {message}; stderr: {}", stderr.trim())
            }
            GuestStop::Host { message } => message,
        })?;
        Ok(CommandOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}
