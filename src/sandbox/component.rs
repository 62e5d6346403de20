//! An action component: read, checked against the WIT contract, compiled,
//! pre-instantiated, and asked which actions it carries.

use super::handler::{HandleExport, Handler};
use super::{CompileSource, Sandbox};
use crate::host::bindings::reconciler::exports::weir::agent::reconciler::{
    GuestIndices as ReconcilerIndices, Reconciled,
};
use crate::host::{ActionInstancePre, InstanceState};
use crate::resources::api::ToolSpec;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The WIT world a component must target.
pub const SKILL_WORLD: &str = "weir:agent/skill@0.1.0";

/// Epoch ticks a component's `actions` and `tools` exports may run at plan time.
const DESCRIBE_CPU_MS: u64 = 5_000;

/// An action a component carries, as its `actions` export reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActionInfo {
    /// The name agents use as `export`.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// Why a file could not be used as an action component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The file could not be read.
    #[error("{path}: cannot read the component: {source}")]
    Read {
        /// The component path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("{path}: not a WebAssembly component (no `\\0asm` header)")]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// The file is a core module, not a component.
    #[error(
        "{path}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// The component is larger than the sandbox compiles.
    #[error("{path}: {message}")]
    TooBig {
        /// The file.
        path: PathBuf,
        /// What is over which bound.
        message: String,
    },
    /// wasmtime rejected the component.
    #[error("{path}: invalid component: {message}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component imports something the host does not provide.
    #[error(
        "{path}: the component needs an import weir does not provide (does it target another world?): {message}"
    )]
    Imports {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component does not export the action handler of the contract.
    #[error(
        "{path}: does not export the `{SKILL_WORLD}` world's `handler` and `tool-provider` with the contract's signatures (it targets another world?): {message}"
    )]
    Exports {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component's `actions` export failed.
    #[error("{path}: calling its `actions` export failed: {message}")]
    Describe {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A checked, compiled action component, ready to instantiate per task.
pub struct ActionComponent {
    path: PathBuf,
    digest: String,
    source: CompileSource,
    actions: Vec<ActionInfo>,
    tools: Vec<ToolSpec>,
    /// Its tools with external effects (from its `reconciler` export).
    effects: Vec<String>,
    /// The interfaces it imports, for example `weir:agent/model@0.1.0`.
    imports: Vec<String>,
    pub(crate) pre: ActionInstancePre<InstanceState>,
    /// Its `handle` export, checked once.
    handle: HandleExport,
    /// Its optional `reconciler` export.
    reconciler: Option<ReconcilerIndices>,
    pub(crate) sandbox: Arc<Sandbox>,
}

impl std::fmt::Debug for ActionComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionComponent")
            .field("path", &self.path)
            .field("digest", &self.digest)
            .field("actions", &self.actions)
            .finish()
    }
}

impl ActionComponent {
    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// sha256 of the component's bytes, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether it was compiled now or loaded from the cache.
    pub fn compile_source(&self) -> CompileSource {
        self.source
    }

    /// The actions it carries.
    pub fn actions(&self) -> &[ActionInfo] {
        &self.actions
    }

    /// The tools it provides.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// Its tools whose calls have external effects, settled after a crash
    /// by its reconciler.
    pub fn effects(&self) -> &[String] {
        &self.effects
    }

    /// The interfaces it imports, for example `weir:agent/model@0.1.0`.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// A fresh instance in `store`, with its `handle` export: what an action
    /// task runs.
    pub(crate) async fn instantiate_handler(
        &self,
        store: &mut wasmtime::Store<InstanceState>,
    ) -> wasmtime::Result<Handler> {
        let instance = self
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        self.handle.bind(store, &instance)
    }

    /// Asks the component's reconciler, in `store`'s fresh instance, what
    /// became of an interrupted call of tool `name`.
    pub(crate) async fn reconcile(
        &self,
        store: &mut wasmtime::Store<InstanceState>,
        name: &str,
        arguments: &str,
        idempotency_key: &str,
    ) -> wasmtime::Result<Result<Option<String>, (String, String)>> {
        let Some(indices) = &self.reconciler else {
            return Ok(Err((
                "no-reconciler".into(),
                "the component exports no reconciler".into(),
            )));
        };
        let instance = self
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        let reconciler = indices.load(&mut *store, &instance)?;
        let answer = reconciler
            .call_reconcile(&mut *store, name, arguments, idempotency_key)
            .await?;
        Ok(match answer {
            Ok(Reconciled::Done(result)) => Ok(Some(result)),
            Ok(Reconciled::NotDone) => Ok(None),
            Err(e) => Err((e.code, e.message)),
        })
    }
}

/// The wasm binary header: magic, then a version/layer word that tells core
/// modules (version 1) from components (layer 1).
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Reads `path`, checks it is a component, compiles it (or loads it from the
/// compile cache) and links its imports. Returns its sha256, where the code
/// came from, and the pre-linked instance.
pub(super) fn compile(
    sandbox: &Arc<Sandbox>,
    path: &Path,
) -> Result<
    (
        String,
        CompileSource,
        wasmtime::component::InstancePre<InstanceState>,
    ),
    ComponentError,
> {
    let bytes = read_bounded(path, sandbox.config().max_component_bytes)?;
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ComponentError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(ComponentError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    let digest = hex::encode(Sha256::digest(&bytes));
    count_functions(&bytes, sandbox.config().max_component_functions).map_err(|message| {
        ComponentError::TooBig {
            path: path.to_path_buf(),
            message,
        }
    })?;
    let compiled = match &sandbox.cache {
        Some(cache) => cache.load_or_compile(&sandbox.engine, &digest, &bytes),
        None => wasmtime::component::Component::new(&sandbox.engine, &bytes)
            .map(|c| (c, CompileSource::Compiled))
            .map_err(anyhow::Error::from),
    };
    let (component, source) = compiled.map_err(|e| ComponentError::Compile {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    })?;
    let instance_pre =
        sandbox
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ComponentError::Imports {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
    Ok((digest, source, instance_pre))
}

/// Reads the component at `path`, refusing a file over `max` bytes before
/// reading it.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ComponentError> {
    use std::io::Read;
    let read_error = |source| ComponentError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(ComponentError::TooBig {
            path: path.to_path_buf(),
            message: format!(
                "the component is over {max} bytes, the sandbox's `max_component_bytes`"
            ),
        });
    }
    Ok(bytes)
}

/// Counts the functions a component's core modules define, refusing more
/// than `max` before anything is compiled. Malformed bytes are left for
/// wasmtime to report.
fn count_functions(bytes: &[u8], max: u64) -> Result<(), String> {
    let mut functions = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        if let wasmparser::Payload::CodeSectionStart { count, .. } = payload {
            functions += u64::from(count);
            if functions > max {
                return Err(format!(
                    "the component defines over {max} functions, the sandbox's `max_component_functions` \
                     (refused before compiling: each function costs compile time and memory)"
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn load(sandbox: &Arc<Sandbox>, path: &Path) -> Result<ActionComponent, ComponentError> {
    let (digest, source, instance_pre) = compile(sandbox, path)?;
    // A component without effects need not export a reconciler.
    let reconciler = ReconcilerIndices::new(&instance_pre).ok();
    let imports = instance_pre
        .component()
        .component_type()
        .imports(&sandbox.engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports_error = |e: wasmtime::Error| ComponentError::Exports {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let pre = ActionInstancePre::new(instance_pre).map_err(exports_error)?;
    let (handle, (actions, tools, effects)) = describe(sandbox, &pre, reconciler.as_ref())
        .map_err(|message| ComponentError::Describe {
            path: path.to_path_buf(),
            message,
        })?;
    Ok(ActionComponent {
        path: path.to_path_buf(),
        digest,
        source,
        actions,
        tools,
        effects,
        imports,
        pre,
        handle,
        reconciler,
        sandbox: sandbox.clone(),
    })
}

type Description = (Vec<ActionInfo>, Vec<ToolSpec>, Vec<String>);

/// In one fresh, capability-less instance: finds and type-checks the
/// `handle` export, and calls the component's `actions`, `tools` and
/// `effects` exports.
fn describe(
    sandbox: &Arc<Sandbox>,
    pre: &ActionInstancePre<InstanceState>,
    reconciler: Option<&ReconcilerIndices>,
) -> Result<(HandleExport, Description), String> {
    let mut store = sandbox.new_store(InstanceState::describe(DESCRIBE_CPU_MS));
    let run = async {
        let instance = pre.instance_pre().instantiate_async(&mut store).await?;
        let handle = HandleExport::find(pre.instance_pre(), &mut store, &instance)?;
        let bindings = crate::host::bindings::SkillCore::new(&mut store, &instance)?;
        let actions: Vec<_> = bindings
            .weir_agent_handler()
            .call_actions(&mut store)
            .await?;
        let tools: Vec<_> = bindings
            .weir_agent_tool_provider()
            .call_tools(&mut store)
            .await?;
        let effects = match reconciler {
            Some(indices) => {
                let reconciler = indices.load(&mut store, &instance)?;
                reconciler.call_effects(&mut store).await?
            }
            None => Vec::new(),
        };
        wasmtime::Result::Ok((handle, actions, tools, effects))
    };
    let (handle, actions, tools, effects) =
        crate::util::block_on(run).map_err(|e: wasmtime::Error| format!("{e:#}"))?;
    let actions = actions
        .into_iter()
        .map(|info| ActionInfo {
            name: info.name,
            description: info.description,
        })
        .collect();
    let tools = tools
        .into_iter()
        .map(|spec| {
            let parameters = serde_json::from_str(&spec.parameters).map_err(|e| {
                format!(
                    "the parameters schema of tool `{}` is not JSON: {e}",
                    spec.name
                )
            })?;
            Ok(ToolSpec {
                name: spec.name,
                description: spec.description,
                parameters,
            })
        })
        .collect::<Result<Vec<ToolSpec>, String>>()?;
    if let Some(unknown) = effects
        .iter()
        .find(|e| !tools.iter().any(|t| &t.name == *e))
    {
        return Err(format!(
            "its reconciler names `{unknown}` among its effects, but it provides no tool of that name"
        ));
    }
    Ok((handle, (actions, tools, effects)))
}
