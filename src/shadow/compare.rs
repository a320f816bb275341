//! How a shadow bundle's outcome differs from the live one, for the same request under the
//! same settings. Pure: no clock, no store.

use std::collections::BTreeSet;

use crate::audit::{Disagreement, Flip};
use crate::bundle::PolicyBundle;
use crate::decision::Outcome;

/// The ids of the policies `shadow` adds, removes or changes (text or annotations) relative
/// to `live`.
pub fn changed_policies(live: &PolicyBundle, shadow: &PolicyBundle) -> BTreeSet<String> {
    let texts = |bundle: &PolicyBundle| -> std::collections::HashMap<String, String> {
        bundle
            .policies()
            .iter()
            .map(|p| {
                let meta = bundle.meta(p.id());
                (p.id().to_string(), format!("{p}\n{meta:?}"))
            })
            .collect()
    };
    let (before, after) = (texts(live), texts(shadow));
    let mut changed: BTreeSet<String> = after
        .iter()
        .filter(|(id, text)| before.get(*id) != Some(*text))
        .map(|(id, _)| id.clone())
        .collect();
    changed.extend(before.keys().filter(|id| !after.contains_key(*id)).cloned());
    changed
}

/// What separates `shadow` from `live`; `approval_obligation` is the settings' obligation that
/// only a human meets, and `changed` the policies the shadow bundle changes relative to the
/// live bundle that decided, when known.
pub fn compare(
    live: &Outcome,
    shadow: &Outcome,
    approval_obligation: &str,
    changed: Option<&BTreeSet<String>>,
) -> Disagreement {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        let b: BTreeSet<&String> = b.iter().collect();
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    let mut disagreement = Disagreement {
        effect: flip(live.effect, shadow.effect),
        newly_granted: only(&shadow.granted, &live.granted),
        newly_refused: only(&live.granted, &shadow.granted),
        ttl_secs: flip(live.ttl_secs, shadow.ttl_secs),
        obligations_added: only(&shadow.obligations, &live.obligations),
        obligations_dropped: only(&live.obligations, &shadow.obligations),
        approval_required: flip(
            live.needs_approval(approval_obligation),
            shadow.needs_approval(approval_obligation),
        ),
        shadow_refused: None,
        policies: Vec::new(),
    };
    if !disagreement.is_empty() {
        disagreement.policies = responsible(live, shadow, changed);
    }
    disagreement
}

/// `live` and `shadow` when they differ.
fn flip<T: PartialEq>(live: T, shadow: T) -> Option<Flip<T>> {
    (live != shadow).then_some(Flip { live, shadow })
}

/// The disagreement of a request the shadow bundle refused as invalid, which `live` decided.
pub fn refused_by_shadow(live: &Outcome, why: String) -> Disagreement {
    Disagreement {
        shadow_refused: Some(why),
        policies: live.determining_policies.clone(),
        ..Disagreement::default()
    }
}

fn responsible(
    live: &Outcome,
    shadow: &Outcome,
    changed: Option<&BTreeSet<String>>,
) -> Vec<String> {
    let live_set: BTreeSet<&String> = live.determining_policies.iter().collect();
    let shadow_set: BTreeSet<&String> = shadow.determining_policies.iter().collect();
    // A forbid the shadow adds is behind a flip even when it leaves a changed permit among
    // the live answer's policies: policies that decide on one side only come first.
    let tiers: [BTreeSet<&String>; 3] = [
        shadow_set.difference(&live_set).copied().collect(),
        live_set.difference(&shadow_set).copied().collect(),
        shadow_set.intersection(&live_set).copied().collect(),
    ];
    let pick = |keep: &dyn Fn(&String) -> bool| {
        tiers
            .iter()
            .map(|tier| {
                tier.iter()
                    .filter(|p| keep(p))
                    .map(|p| (*p).clone())
                    .collect::<Vec<_>>()
            })
            .find(|named| !named.is_empty())
    };
    changed
        .and_then(|changed| pick(&|p| changed.contains(p)))
        .or_else(|| pick(&|_| true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Effect;

    fn allow(granted: &[&str], ttl: u64, policies: &[&str], obligations: &[&str]) -> Outcome {
        Outcome {
            effect: Effect::Allow,
            granted: granted.iter().map(|s| (*s).to_owned()).collect(),
            refused: Vec::new(),
            ttl_secs: ttl,
            chain: Vec::new(),
            obligations: obligations.iter().map(|s| (*s).to_owned()).collect(),
            determining_policies: policies.iter().map(|s| (*s).to_owned()).collect(),
            bundle_version: "v".into(),
            denial: None,
        }
    }

    fn deny(forbids: &[&str]) -> Outcome {
        Outcome {
            effect: Effect::Deny,
            ttl_secs: 0,
            granted: Vec::new(),
            determining_policies: forbids.iter().map(|s| (*s).to_owned()).collect(),
            ..allow(&[], 0, &[], &[])
        }
    }

    #[test]
    fn identical_outcomes_agree_even_from_another_bundle_version() {
        let live = allow(&["a"], 300, &["p"], &[]);
        let shadow = Outcome {
            bundle_version: "w".into(),
            ..live.clone()
        };
        assert!(compare(&live, &shadow, "human", None).is_empty());
    }

    #[test]
    fn a_forbid_added_flips_the_effect_and_names_the_forbid() {
        let d = compare(
            &allow(&["a"], 300, &["p"], &[]),
            &deny(&["f"]),
            "human",
            None,
        );
        assert_eq!(
            d.effect,
            Some(Flip {
                live: Effect::Allow,
                shadow: Effect::Deny
            })
        );
        assert_eq!(d.newly_refused, ["a"]);
        assert_eq!(
            d.ttl_secs,
            Some(Flip {
                live: 300,
                shadow: 0
            })
        );
        assert_eq!(d.policies, ["f"]);
    }

    #[test]
    fn a_shorter_ttl_under_the_same_policy_names_that_policy() {
        let d = compare(
            &allow(&["a"], 300, &["p"], &[]),
            &allow(&["a"], 60, &["p"], &[]),
            "human",
            None,
        );
        assert_eq!(
            d.ttl_secs,
            Some(Flip {
                live: 300,
                shadow: 60
            })
        );
        assert!(d.effect.is_none() && d.newly_refused.is_empty());
        assert_eq!(d.policies, ["p"]);
    }

    #[test]
    fn a_scope_removed_names_the_permit_that_is_gone() {
        let d = compare(
            &allow(&["a", "b"], 300, &["p", "q"], &[]),
            &allow(&["a"], 300, &["p"], &[]),
            "human",
            None,
        );
        assert_eq!(d.newly_refused, ["b"]);
        assert!(d.newly_granted.is_empty());
        assert_eq!(d.policies, ["q"]);
    }

    #[test]
    fn a_changed_policy_among_the_determining_ones_is_named_alone() {
        let changed: BTreeSet<String> = ["q".to_owned()].into();
        let d = compare(
            &allow(&["a", "b"], 300, &["p", "q", "r"], &[]),
            &allow(&["a"], 300, &["p", "q"], &[]),
            "human",
            Some(&changed),
        );
        assert_eq!(d.policies, ["q"]);
    }

    #[test]
    fn a_forbid_added_is_named_before_a_changed_permit_on_both_sides() {
        let changed: BTreeSet<String> = ["p".to_owned(), "f".to_owned()].into();
        let d = compare(
            &allow(&["a"], 300, &["p", "q"], &[]),
            &deny(&["f"]),
            "human",
            Some(&changed),
        );
        assert_eq!(d.policies, ["f"]);
    }

    #[test]
    fn an_approval_obligation_added_requires_approval() {
        let d = compare(
            &allow(&["a"], 300, &["p"], &[]),
            &allow(&["a"], 300, &["p"], &["human"]),
            "human",
            None,
        );
        assert_eq!(d.obligations_added, ["human"]);
        assert_eq!(
            d.approval_required,
            Some(Flip {
                live: false,
                shadow: true
            })
        );
    }
}
