//! A cheap scan for bracket nesting, run before any parser sees a file. Cedar's parsers (and the
//! conversions after them) recurse once per level: 150 nested parentheses overflowed a 2 MiB
//! stack and aborted the whole process. No real bundle nests anywhere near [`MAX_NESTING`].

use super::diagnostic::BundleDiagnostic;
use super::source::{SourceFile, SourceKind};

/// How deep brackets, parentheses and braces may nest in any bundle file.
pub const MAX_NESTING: usize = 32;

/// A diagnostic for every file of `files` that nests deeper than [`MAX_NESTING`], located at
/// the first bracket past the limit.
pub(super) fn too_deep(files: &[SourceFile]) -> Vec<BundleDiagnostic> {
    files
        .iter()
        .filter_map(|file| {
            let syntax = match file.kind()? {
                SourceKind::Schema => Syntax::Schema,
                SourceKind::Policies => Syntax::Policies,
                SourceKind::Entities | SourceKind::Tests => Syntax::Json,
            };
            let at = too_deep_at(&file.text, syntax)?;
            Some(BundleDiagnostic::at_offset(
                &file.name,
                &file.text,
                at,
                format!(
                    "nesting deeper than {MAX_NESTING} levels of brackets; Baton refuses such a file unparsed"
                ),
            ))
        })
        .collect()
}

/// What counts as an opening bracket and whether `//` starts a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Syntax {
    /// `<` nests a type (`Set<Set<…>>`).
    Schema,
    /// `<` compares, so it is not counted.
    Policies,
    /// No comments.
    Json,
}

/// The byte offset of the first bracket nested deeper than [`MAX_NESTING`], outside string
/// literals and, except in JSON, `//` comments (neither Cedar syntax has another kind).
pub(super) fn too_deep_at(text: &str, syntax: Syntax) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let opens = matches!(c, '{' | '[' | '(') || (c == '<' && syntax == Syntax::Schema);
        let closes = matches!(c, '}' | ']' | ')') || (c == '>' && syntax == Syntax::Schema);
        match c {
            '"' => in_string = true,
            '/' if syntax != Syntax::Json && chars.peek().is_some_and(|&(_, n)| n == '/') => {
                chars.by_ref().find(|&(_, c)| c == '\n');
            }
            _ if opens => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(at);
                }
            }
            _ if closes => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let nested = |levels: usize| format!("{}{}", "{ n: ".repeat(levels), "}".repeat(levels));
        assert_eq!(too_deep_at(&nested(MAX_NESTING), Syntax::Schema), None);
        assert_eq!(
            too_deep_at(&nested(MAX_NESTING + 1), Syntax::Schema),
            Some(5 * MAX_NESTING)
        );
        let set = format!("{}Long{}", "Set<".repeat(40), ">".repeat(40));
        assert_eq!(too_deep_at(&set, Syntax::Schema), Some(4 * MAX_NESTING + 3));
        let quiet = format!(
            "@doc(\"{}\\\"{}\")\n// {}\n{{}}",
            "{".repeat(40),
            "<".repeat(40),
            "[".repeat(40)
        );
        assert_eq!(too_deep_at(&quiet, Syntax::Schema), None, "{quiet}");
    }

    #[test]
    fn comparisons_do_not_nest_in_policies_and_json_has_no_comments() {
        let compares = format!(
            "permit(principal, action, resource) when {{ {} }};",
            "1 < 2 && ".repeat(100) + "true"
        );
        assert_eq!(too_deep_at(&compares, Syntax::Policies), None);
        let parens = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(too_deep_at(&parens, Syntax::Policies), Some(MAX_NESTING));
        let json = format!("[\"//\", {}1{}]", "[".repeat(40), "]".repeat(40));
        assert_eq!(too_deep_at(&json, Syntax::Json), Some(6 + MAX_NESTING));
    }
}
