//! The shape every host capability has, as Spin's factors do: a module per
//! WIT interface with its `Host` impl, and one [`HostCapability`] entry in
//! [`super::CAPABILITIES`] that links it and says, at plan time, what a
//! component importing it lacks. Adding a capability is one module and one
//! line in that list.

use super::{Grants, InstanceState};
use wasmtime::component::Linker;

/// One host capability: the WIT interface it serves, how it is linked,
/// and its plan-time check.
pub(crate) struct HostCapability {
    /// The interface without its version, for example `weir:agent/model`.
    pub interface: &'static str,
    /// Adds its host functions to the linker.
    pub link: fn(&mut Linker<InstanceState>) -> wasmtime::Result<()>,
    /// What an action granted `grants` lacks to use the interface, with the
    /// grant that gives it; `None` when it can use it.
    pub lacks: fn(&Grants) -> Option<&'static str>,
}

/// Needs nothing beyond what every action gets.
pub(crate) fn lacks_nothing(_: &Grants) -> Option<&'static str> {
    None
}

/// Plan-time warnings for an action whose component imports `imports`
/// (interface names, with or without a version) under `grants`: each
/// interface it imports but may not use, so every call to it would be
/// denied. A warning, not an error: weir denies the calls at run time
/// whatever the plan says, and a component with several actions imports
/// what any of them uses.
///
/// A component that imports every `weir:agent` capability says nothing
/// about what it uses: interpreters (Python, JavaScript) import the whole
/// world whatever their code calls. It gets no warnings.
pub(crate) fn unusable_imports<'a>(
    capabilities: &[HostCapability],
    imports: impl IntoIterator<Item = &'a str>,
    grants: &Grants,
) -> Vec<String> {
    let interfaces: Vec<&str> = imports
        .into_iter()
        .map(|import| import.split('@').next().unwrap_or(import))
        .collect();
    let whole_world = capabilities
        .iter()
        .filter(|c| c.interface.starts_with("weir:agent/"))
        .all(|c| interfaces.contains(&c.interface));
    if whole_world {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for interface in interfaces {
        let Some(capability) = capabilities.iter().find(|c| c.interface == interface) else {
            continue;
        };
        if let Some(grant) = (capability.lacks)(grants) {
            warnings.push(format!(
                "its component imports `{interface}`, but the action is granted no {grant}, so every such call will be denied"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_models(grants: &Grants) -> Option<&'static str> {
        grants
            .models
            .is_empty()
            .then_some("model (`models = [...]`)")
    }

    const LIST: &[HostCapability] = &[
        HostCapability {
            interface: "weir:agent/model",
            link: |_| Ok(()),
            lacks: no_models,
        },
        HostCapability {
            interface: "weir:agent/events",
            link: |_| Ok(()),
            lacks: lacks_nothing,
        },
        HostCapability {
            interface: "weir:agent/tools",
            link: |_| Ok(()),
            lacks: |grants| grants.tools.is_empty().then_some("tool"),
        },
    ];

    #[test]
    fn an_import_the_grants_cannot_use_is_named_with_the_grant_that_would() {
        let imports = [
            "weir:agent/model@0.1.0",
            "weir:agent/events@0.1.0",
            "wasi:io/streams",
        ];
        let warnings = unusable_imports(LIST, imports, &Grants::action_default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`weir:agent/model`"), "{warnings:?}");
        assert!(warnings[0].contains("`models = [...]`"), "{warnings:?}");

        let mut granted = Grants::action_default();
        granted.models.insert("assistant".into());
        assert!(unusable_imports(LIST, imports, &granted).is_empty());
    }

    #[test]
    fn a_component_importing_the_whole_world_gets_no_warnings() {
        let imports = [
            "weir:agent/model@0.1.0",
            "weir:agent/events@0.1.0",
            "weir:agent/tools@0.1.0",
        ];
        assert!(unusable_imports(LIST, imports, &Grants::action_default()).is_empty());
    }
}
