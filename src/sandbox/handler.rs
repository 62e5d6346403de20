//! An action component's `handle` export: found and type-checked once per
//! component, then bound to each fresh instance by index.
//!
//! The generated bindings look up and type-check every export of the world
//! (the handler's, the tool provider's) for every instance they make; an
//! action task calls only `handle`, and checking its type on each of tens
//! of thousands of instances a second was a few percent of a trivial task.

use crate::host::InstanceState;
use crate::host::bindings::weir::agent::types::{ActionError, Event};
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Func, Instance, InstancePre, TypedFunc};

/// The interface that carries `handle` in the contract (`wit/agent.wit`).
const HANDLER_INTERFACE: &str = "weir:agent/handler@0.1.0";

/// `handle: func(action: string, event: event) -> result<_, action-error>`.
type HandleFn<'a> = TypedFunc<(&'a str, &'a Event), (Result<(), ActionError>,)>;

/// Where `handle` is among a component's exports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandleExport {
    index: ComponentExportIndex,
}

impl HandleExport {
    /// Finds `handle` in `pre`'s component and checks its type on
    /// `instance`, an instance of `pre`. Every instance of one component
    /// has the same types, so [`HandleExport::bind`] need not check again.
    pub(crate) fn find(
        pre: &InstancePre<InstanceState>,
        store: &mut Store<InstanceState>,
        instance: &Instance,
    ) -> wasmtime::Result<HandleExport> {
        let component = pre.component();
        let interface = component
            .get_export_index(None, HANDLER_INTERFACE)
            .ok_or_else(|| wasmtime::format_err!("no `{HANDLER_INTERFACE}` export"))?;
        let index = component
            .get_export_index(Some(&interface), "handle")
            .ok_or_else(|| wasmtime::format_err!("no `handle` in `{HANDLER_INTERFACE}`"))?;
        let _checked: HandleFn<'_> = instance.get_typed_func(&mut *store, index)?;
        Ok(HandleExport { index })
    }

    /// `handle` of `instance`, an instance of the component this was found
    /// in.
    pub(crate) fn bind(
        &self,
        store: &mut Store<InstanceState>,
        instance: &Instance,
    ) -> wasmtime::Result<Handler> {
        let func = instance
            .get_func(store, self.index)
            .ok_or_else(|| wasmtime::format_err!("no `handle` export in the instance"))?;
        Ok(Handler { func })
    }
}

/// One instance's `handle` function.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handler {
    func: Func,
}

impl Handler {
    /// Runs `action` on `event`: the guest's result, or why it stopped.
    pub(crate) async fn call(
        &self,
        store: &mut Store<InstanceState>,
        action: &str,
        event: &Event,
    ) -> wasmtime::Result<Result<(), ActionError>> {
        // SAFETY: `HandleExport::find` checked this export's type against
        // `HandleFn` on an instance of the same component, and `bind` only
        // hands out that export; instances of one component share its types.
        let typed: HandleFn<'_> = unsafe { TypedFunc::new_unchecked(self.func) };
        let (result,) = typed.call_async(store, (action, event)).await?;
        Ok(result)
    }
}
