//! Cedar ids as text, exactly as Cedar displays them. Cedar's `Display` runs every id through
//! `escape_debug`, a formatting pass of about two thousand instructions an id; a decision turns
//! several ids into text (its determining policies, the `context.chain` of entity names). An id
//! of plain ASCII, which `escape_debug` leaves as it is, is copied instead.

use cedar_policy::{EntityUid, PolicyId};

/// Whether `escape_debug` leaves `s` unchanged: printable ASCII without quotes or backslashes.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\'' | b'\\'))
}

/// The policy id as Cedar displays it.
pub fn policy_id(id: &PolicyId) -> String {
    let raw: &str = id.as_ref();
    if plain(raw) {
        raw.to_owned()
    } else {
        id.to_string()
    }
}

/// The entity as Cedar displays it: `Type::"id"`.
pub fn entity_uid(uid: &EntityUid) -> String {
    let id = uid.id().unescaped();
    if plain(id) {
        let type_name = uid.type_name().to_string();
        let mut text = String::with_capacity(type_name.len() + id.len() + 4);
        text.push_str(&type_name);
        text.push_str("::\"");
        text.push_str(id);
        text.push('"');
        text
    } else {
        uid.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn text_is_what_cedar_displays_for_plain_and_escaped_ids() {
        let ids = [
            "assistant-invokes-analyst",
            "policy0",
            "with space ~!",
            "quote\"d",
            "apostrophe's",
            "back\\slash",
            "new\nline",
            "tab\t",
            "é accent",
            "\u{301}combining first",
            "",
        ];
        for raw in ids {
            let policy = PolicyId::new(raw);
            assert_eq!(policy_id(&policy), policy.to_string(), "{raw:?}");
            for type_name in ["Agent", "Ns::Tool"] {
                let uid = EntityUid::from_type_name_and_id(
                    cedar_policy::EntityTypeName::from_str(type_name).unwrap(),
                    cedar_policy::EntityId::new(raw),
                );
                assert_eq!(entity_uid(&uid), uid.to_string(), "{type_name} {raw:?}");
            }
        }
    }

    #[test]
    fn plain_is_only_what_escape_debug_keeps() {
        for b in 0u8..=127 {
            let s = (b as char).to_string();
            assert_eq!(
                plain(&s),
                s.escape_debug().to_string() == s,
                "byte {b:#04x}"
            );
        }
    }
}
