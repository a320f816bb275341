//! What a shadow bundle would have changed about one live decision, as the audit trail
//! records it. The comparison that finds it is the shadow's (`crate::shadow`); the record owns
//! its shape, so the trail depends on nothing above it.

use serde::{Deserialize, Serialize};

use crate::decision::Effect;

/// One value as the live bundle and as the shadow bundle decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flip<T> {
    /// What the live bundle decided.
    pub live: T,
    /// What the shadow bundle would have decided.
    pub shadow: T,
}

/// What the shadow bundle would have changed about one live decision. Empty when the two
/// agree on everything a caller sees: the effect, each scope, the TTL, the obligations and
/// whether a human must approve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    /// ALLOW or DENY, when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Flip<Effect>>,
    /// Scopes the shadow would grant that the live bundle refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newly_granted: Vec<String>,
    /// Scopes the live bundle granted that the shadow would refuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newly_refused: Vec<String>,
    /// The grant's TTL in seconds, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<Flip<u64>>,
    /// Obligations only the shadow would impose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations_added: Vec<String>,
    /// Obligations only the live bundle imposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations_dropped: Vec<String>,
    /// Whether a human's approval is needed, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_required: Option<Flip<bool>>,
    /// Why the shadow bundle could not decide the request at all (it refused it as invalid,
    /// for instance for a type it does not declare); the live bundle decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_refused: Option<String>,
    /// The policies behind the change, sorted: of the policies determining the shadow's
    /// outcome and not the live one's, else of those determining only the live one's, else of
    /// those determining both, the ones the shadow bundle adds, removes or changes. When no
    /// such policy decides (the live bundle moved on since the shadow was pushed), the first
    /// of those three sets that is not empty.
    pub policies: Vec<String>,
}

impl Disagreement {
    /// Whether the two outcomes agree.
    pub fn is_empty(&self) -> bool {
        self.effect.is_none()
            && self.newly_granted.is_empty()
            && self.newly_refused.is_empty()
            && self.ttl_secs.is_none()
            && self.obligations_added.is_empty()
            && self.obligations_dropped.is_empty()
            && self.approval_required.is_none()
            && self.shadow_refused.is_none()
    }
}

impl Disagreement {
    /// Each change as one line: `effect ALLOW -> DENY`, `refused finance.read`, `ttl 300 -> 60`.
    pub fn changes(&self) -> Vec<String> {
        let effect = |e: Effect| match e {
            Effect::Allow => "ALLOW",
            Effect::Deny => "DENY",
        };
        let mut lines = Vec::new();
        if let Some(f) = self.effect {
            lines.push(format!("effect {} -> {}", effect(f.live), effect(f.shadow)));
        }
        lines.extend(self.newly_granted.iter().map(|s| format!("granted {s}")));
        lines.extend(self.newly_refused.iter().map(|s| format!("refused {s}")));
        if let Some(f) = self.ttl_secs {
            lines.push(format!("ttl {} -> {}", f.live, f.shadow));
        }
        lines.extend(
            self.obligations_added
                .iter()
                .map(|o| format!("obligation added {o}")),
        );
        lines.extend(
            self.obligations_dropped
                .iter()
                .map(|o| format!("obligation dropped {o}")),
        );
        if let Some(f) = self.approval_required {
            lines.push(format!("approval required {} -> {}", f.live, f.shadow));
        }
        if let Some(why) = &self.shadow_refused {
            lines.push(format!("refused by the shadow bundle: {why}"));
        }
        lines
    }
}
