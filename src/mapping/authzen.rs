//! The AuthZEN part of the gateway mapping: which Baton kind an AuthZEN subject type names, and
//! which of the bundle's entity types an AuthZEN resource type names.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::identity::{IdentityKind, ResourceType};

/// How AuthZEN subjects and resources name Baton's identities and the bundle's types.
#[derive(Debug, Clone, Default)]
pub struct AuthzenMapping {
    subject_types: BTreeMap<String, IdentityKind>,
    resource_types: BTreeMap<String, IdentityKind>,
}

impl AuthzenMapping {
    /// The acting kind an AuthZEN subject type names: the mapping's, else `user`, `service`
    /// and `agent` in any case.
    pub fn subject_kind(&self, subject_type: &str) -> Option<IdentityKind> {
        if let Some(kind) = self.subject_types.get(subject_type) {
            return Some(kind.clone());
        }
        IdentityKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(subject_type))
    }

    /// The kind an AuthZEN resource type names among `declared` (the bundle's entity types): the
    /// mapping's, else the declared type of exactly that name, else the one declared type that
    /// matches it ignoring case (`todo` → `Todo`). `None` when it names none, or several.
    pub fn resource_kind<'a>(
        &self,
        resource_type: &str,
        declared: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<IdentityKind> {
        if let Some(kind) = self.resource_types.get(resource_type) {
            return Some(kind.clone());
        }
        let name = if declared.clone().any(|t| t == resource_type) {
            resource_type
        } else {
            let mut found = declared.filter(|t| t.eq_ignore_ascii_case(resource_type));
            let first = found.next()?;
            if found.next().is_some() {
                return None;
            }
            first
        };
        IdentityKind::parse_any(name)
    }

    pub(super) fn from_file(file: AuthzenFile, problems: &mut Vec<String>) -> Self {
        let mut subject_types = BTreeMap::new();
        for (from, to) in file.subject_types {
            match IdentityKind::parse(&to) {
                Some(kind) => {
                    subject_types.insert(from, kind);
                }
                None => problems.push(format!(
                    "authzen.subject_types.{from} is `{to}`: a subject is a `User`, `Service` or `Agent`"
                )),
            }
        }
        let mut resource_types = BTreeMap::new();
        for (from, to) in file.resource_types {
            let kind = IdentityKind::parse(&to)
                .or_else(|| ResourceType::parse(&to).map(IdentityKind::Resource));
            match kind {
                Some(kind) => {
                    resource_types.insert(from, kind);
                }
                None => problems.push(format!(
                    "authzen.resource_types.{from} is `{to}`, which is not an entity type name"
                )),
            }
        }
        Self {
            subject_types,
            resource_types,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthzenFile {
    #[serde(default)]
    subject_types: BTreeMap<String, String>,
    #[serde(default)]
    resource_types: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::super::GatewayMapping;

    #[test]
    fn types_map_by_the_file_then_by_name() {
        let m = GatewayMapping::parse(
            "[authzen]\nsubject_types = { identity = \"User\" }\nresource_types = { user = \"UserRecord\" }",
        )
        .unwrap()
        .authzen;
        assert_eq!(m.subject_kind("identity").unwrap().as_str(), "User");
        assert_eq!(m.subject_kind("agent").unwrap().as_str(), "Agent");
        assert!(m.subject_kind("robot").is_none());
        let declared = ["User", "Agent", "Todo", "UserRecord", "todo2", "TODO2"];
        let kind = |t: &str| m.resource_kind(t, declared.iter().copied());
        assert_eq!(kind("todo").unwrap().as_str(), "Todo");
        assert_eq!(kind("user").unwrap().as_str(), "UserRecord");
        assert_eq!(kind("todo2").unwrap().as_str(), "todo2");
        assert!(kind("Todo2").is_none(), "ambiguous");
        assert!(kind("ticket").is_none());
        assert!(GatewayMapping::parse("[authzen]\nsubject_types = { x = \"Tool\" }").is_err());
    }
}
