//! The annotations Baton reads from policies: `@id`, `@ttl`, `@obligation` and `@approvers`.

use std::collections::BTreeSet;

use cedar_policy::{Effect, Policy};

/// Longest session a single `@ttl` may ask for: one day. The server's maximum caps it further.
pub const MAX_ANNOTATED_TTL_SECS: u64 = 86_400;

/// The most distinct approvers an `@approvers` may ask for.
pub const MAX_APPROVERS: u8 = 10;

/// What a policy contributes to a decision beyond permit or forbid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMeta {
    /// `@ttl("seconds")`: the longest session this permit grants.
    pub ttl_secs: Option<u64>,
    /// `@obligation("a, b")`: what the enforcement point must do when this permit decides.
    pub obligations: BTreeSet<String>,
    /// `@approvers("2")`: how many distinct approvers this permit's approval obligation
    /// needs; one when absent.
    pub approvers: Option<u8>,
}

/// The annotations Baton reads, as written. Found in one pass over the policy's annotations:
/// `Policy::annotation` parses its key with Cedar's parser on every call, which cost a third of
/// activating a large bundle.
#[derive(Default)]
struct Annotated<'a> {
    id: Option<&'a str>,
    ttl: Option<&'a str>,
    obligation: Option<&'a str>,
    approvers: Option<&'a str>,
}

impl<'a> Annotated<'a> {
    fn of(policy: &'a Policy) -> Self {
        let mut found = Self::default();
        for (key, value) in policy.annotations() {
            match key {
                "id" => found.id = Some(value),
                "ttl" => found.ttl = Some(value),
                "obligation" => found.obligation = Some(value),
                "approvers" => found.approvers = Some(value),
                _ => {}
            }
        }
        found
    }
}

/// The `@id` of `policy`, if it has one.
pub fn id(policy: &Policy) -> Option<&str> {
    Annotated::of(policy).id
}

/// Reads the Baton annotations of `policy`; each error is a message for the policy's location.
pub fn read(policy: &Policy) -> Result<PolicyMeta, Vec<String>> {
    let found = Annotated::of(policy);
    let mut errors = Vec::new();
    let mut meta = PolicyMeta::default();
    let permit = policy.effect() == Effect::Permit;

    if let Some(raw) = found.ttl {
        if !permit {
            errors.push("`@ttl` applies to permit policies only".to_owned());
        }
        match parse_ttl(raw) {
            Ok(secs) => meta.ttl_secs = Some(secs),
            Err(e) => errors.push(e),
        }
    }
    if let Some(raw) = found.obligation {
        if !permit {
            errors.push("`@obligation` applies to permit policies only".to_owned());
        }
        match parse_obligations(raw) {
            Ok(set) => meta.obligations = set,
            Err(e) => errors.push(e),
        }
    }
    if let Some(raw) = found.approvers {
        if !permit {
            errors.push("`@approvers` applies to permit policies only".to_owned());
        } else if found.obligation.is_none() {
            errors.push(
                "`@approvers` needs the approval obligation beside it, such as `@obligation(\"human_approval\")`"
                    .to_owned(),
            );
        }
        match parse_approvers(raw) {
            Ok(n) => meta.approvers = Some(n),
            Err(e) => errors.push(e),
        }
    }
    if let Some(raw) = found.id
        && let Err(e) = check_id(raw)
    {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(meta)
    } else {
        Err(errors)
    }
}

fn parse_ttl(raw: &str) -> Result<u64, String> {
    let secs: u64 = raw.trim().parse().map_err(|_| {
        format!("`@ttl(\"{raw}\")` must be a whole number of seconds, such as `@ttl(\"900\")`")
    })?;
    if secs == 0 || secs > MAX_ANNOTATED_TTL_SECS {
        return Err(format!(
            "`@ttl(\"{raw}\")` must be between 1 and {MAX_ANNOTATED_TTL_SECS} seconds"
        ));
    }
    Ok(secs)
}

fn parse_approvers(raw: &str) -> Result<u8, String> {
    match raw.trim().parse::<u8>() {
        Ok(n) if (1..=MAX_APPROVERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "`@approvers(\"{raw}\")` must be a whole number of distinct approvers from 1 to {MAX_APPROVERS}, such as `@approvers(\"2\")`"
        )),
    }
}

/// Obligations are short machine-readable names: enforcement points match on them.
fn parse_obligations(raw: &str) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for name in raw.split(',').map(str::trim) {
        if !is_token(name) {
            return Err(format!(
                "`@obligation(\"{raw}\")` must be a comma-separated list of names made of letters, digits, `_`, `-`, `.` and `:`"
            ));
        }
        set.insert(name.to_owned());
    }
    Ok(set)
}

fn check_id(raw: &str) -> Result<(), String> {
    if is_token(raw) && raw.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "`@id(\"{raw}\")` must be 1 to 128 letters, digits, `_`, `-`, `.` or `:`"
        ))
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy::PolicyId;

    fn policy(src: &str) -> Policy {
        Policy::parse(Some(PolicyId::new("p")), src).unwrap()
    }

    #[test]
    fn reads_ttl_and_obligations_from_permits() {
        let meta = read(&policy(
            r#"@ttl("900") @obligation("human_approval, log.full") permit(principal, action, resource);"#,
        ))
        .unwrap();
        assert_eq!(meta.ttl_secs, Some(900));
        assert_eq!(
            meta.obligations.into_iter().collect::<Vec<_>>(),
            ["human_approval", "log.full"]
        );
        assert_eq!(meta.approvers, None);
        let two = read(&policy(
            r#"@obligation("human_approval") @approvers("2") permit(principal, action, resource);"#,
        ))
        .unwrap();
        assert_eq!(two.approvers, Some(2));
    }

    #[test]
    fn rejects_malformed_values() {
        for src in [
            r#"@ttl("15m") permit(principal, action, resource);"#,
            r#"@ttl("0") permit(principal, action, resource);"#,
            r#"@ttl("86401") permit(principal, action, resource);"#,
            r#"@obligation("") permit(principal, action, resource);"#,
            r#"@obligation("a,,b") permit(principal, action, resource);"#,
            r#"@obligation("needs approval") permit(principal, action, resource);"#,
            r#"@id("has space") permit(principal, action, resource);"#,
            r#"@ttl("60") forbid(principal, action, resource);"#,
            r#"@obligation("x") forbid(principal, action, resource);"#,
            r#"@obligation("human_approval") @approvers("0") permit(principal, action, resource);"#,
            r#"@obligation("human_approval") @approvers("11") permit(principal, action, resource);"#,
            r#"@obligation("human_approval") @approvers("two") permit(principal, action, resource);"#,
            r#"@obligation("human_approval") @approvers("-1") permit(principal, action, resource);"#,
            r#"@approvers("2") permit(principal, action, resource);"#,
            r#"@approvers("2") forbid(principal, action, resource);"#,
        ] {
            assert!(read(&policy(src)).is_err(), "accepted {src}");
        }
    }

    #[test]
    fn other_annotations_are_left_to_authors() {
        let meta = read(&policy(
            r#"@description("anything") forbid(principal, action, resource);"#,
        ))
        .unwrap();
        assert_eq!(meta, PolicyMeta::default());
    }

    #[test]
    fn the_id_is_read_among_other_annotations_and_only_under_its_own_key() {
        let named = policy(
            r#"@description("x") @id("named") @ttl("60") permit(principal, action, resource);"#,
        );
        assert_eq!(id(&named), Some("named"));
        assert_eq!(read(&named).unwrap().ttl_secs, Some(60));
        let unnamed = policy(r#"@identifier("not-an-id") permit(principal, action, resource);"#);
        assert_eq!(id(&unnamed), None);
        assert_eq!(read(&unnamed).unwrap(), PolicyMeta::default());
    }
}
