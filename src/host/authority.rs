//! On whose behalf the built-in chat-model and tool-call actions act.
//!
//! A `_chat_request_event` starts an exchange of built-in events (chat
//! request -> tool request -> tool response -> ...) that the built-in actions
//! serve. They hold no grants of their own: each event of the exchange
//! carries, host-side and out of every guest's reach, the [`Authority`] of
//! the action that asked, and the built-ins use exactly its grants. Once a
//! model has answered with tool calls, the authority is narrowed to what was
//! [`Offered`] in that request, so a model's reply (and whatever was injected
//! into its prompt) can never reach a tool its request did not offer.

use super::Grants;
use super::tools::{LOAD_SKILL, RUN_SKILL_COMMAND};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The action a built-in event acts for, and what it may use.
#[derive(Debug)]
pub(crate) struct Authority {
    /// The requesting action's name.
    pub action: Arc<str>,
    /// Its grants: what the built-ins may use for it.
    pub grants: Arc<Grants>,
    /// What the model was offered, once it has asked for tool calls.
    pub offered: Option<Offered>,
}

impl Authority {
    /// The authority of `action` itself, before any model was asked.
    pub(crate) fn of(action: Arc<str>, grants: Arc<Grants>) -> Arc<Authority> {
        Arc::new(Authority {
            action,
            grants,
            offered: None,
        })
    }

    /// The same requester, limited to what one model request offered.
    pub(crate) fn narrowed(&self, offered: Offered) -> Arc<Authority> {
        Arc::new(Authority {
            action: self.action.clone(),
            grants: self.grants.clone(),
            offered: Some(offered),
        })
    }

    /// Why the tool call `name` (with `arguments`) may not run for this
    /// authority, if it may not: a tool the request did not offer, or a
    /// skill it did not list.
    pub(crate) fn refuses(&self, name: &str, arguments: &serde_json::Value) -> Option<String> {
        let offered = self.offered.as_ref()?;
        if !offered.tools.contains(name) {
            return Some(format!(
                "the model asked for tool `{name}`, which its request did not offer (offered: {})",
                list(&offered.tools)
            ));
        }
        let skill_field = match name {
            LOAD_SKILL => "name",
            RUN_SKILL_COMMAND => "skill",
            _ => return None,
        };
        let skill = arguments[skill_field].as_str().unwrap_or_default();
        (!offered.skills.contains(skill)).then(|| {
            format!(
                "the model asked `{name}` for skill `{skill}`, which its request did not list (skills: {})",
                list(&offered.skills)
            )
        })
    }
}

/// The tools (and skills) one chat request offered its model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Offered {
    pub tools: BTreeSet<String>,
    pub skills: BTreeSet<String>,
}

fn list(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authority(tools: &[&str], skills: &[&str]) -> Arc<Authority> {
        Authority::of(Arc::from("ask"), Arc::new(Grants::action_default())).narrowed(Offered {
            tools: tools.iter().map(|t| t.to_string()).collect(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn only_offered_tools_and_listed_skills_pass() {
        let a = authority(&["add", LOAD_SKILL], &["greeter"]);
        assert_eq!(a.refuses("add", &json!({})), None);
        let refused = a.refuses("write_file", &json!({})).unwrap();
        assert!(refused.contains("`write_file`"), "{refused}");
        assert!(refused.contains("offered: add, load_skill"), "{refused}");
        assert_eq!(a.refuses(LOAD_SKILL, &json!({ "name": "greeter" })), None);
        let refused = a.refuses(LOAD_SKILL, &json!({ "name": "admin" })).unwrap();
        assert!(refused.contains("skill `admin`"), "{refused}");
        // A command of a skill not listed, through a tool that was not offered.
        assert!(
            a.refuses(RUN_SKILL_COMMAND, &json!({ "skill": "greeter" }))
                .is_some()
        );
    }

    #[test]
    fn an_unnarrowed_authority_leaves_the_check_to_the_grants() {
        let a = Authority::of(Arc::from("ask"), Arc::new(Grants::action_default()));
        assert_eq!(a.refuses("anything", &json!({})), None);
    }
}
