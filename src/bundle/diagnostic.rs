//! Located bundle errors: every problem names `file:line:column`, as a policy author's editor expects.

use std::fmt;

use miette::Diagnostic;
use serde::Serialize;

/// One problem found in a bundle, located in the file that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleDiagnostic {
    /// The file's name within the bundle.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong, without the location.
    pub message: String,
}

impl BundleDiagnostic {
    /// A diagnostic at a byte `offset` into `text`, the contents of `file`.
    pub fn at_offset(file: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(text, offset);
        Self {
            file: clip(file),
            line,
            column,
            message: clip(&message.into()),
        }
    }

    /// A diagnostic about a file as a whole.
    pub fn in_file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: clip(file),
            line: 1,
            column: 1,
            message: clip(&message.into()),
        }
    }

    /// Flattens a Cedar (miette) diagnostic and its related ones into located diagnostics. The
    /// spans of Cedar's diagnostics are byte offsets into `text`, the contents of `file`.
    pub fn from_cedar(file: &str, text: &str, diag: &dyn Diagnostic) -> Vec<Self> {
        let offset = diag
            .labels()
            .and_then(|mut labels| labels.next())
            .map_or(0, |label| label.offset());
        let mut message = diag.to_string();
        // Cedar often puts the specifics (which attribute, which type) in the source chain.
        let mut source = diag.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        if let Some(help) = diag.help() {
            message.push_str(&format!(" (help: {help})"));
        }
        let mut out = vec![Self::at_offset(file, text, offset, message)];
        if let Some(related) = diag.related() {
            out.extend(related.flat_map(|inner| Self::from_cedar(file, text, inner)));
        }
        out
    }
}

impl fmt::Display for BundleDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A bundle that cannot be activated, with every error found and the warnings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bundle rejected with {} error(s): {}", .errors.len(), first(.errors))]
pub struct BundleError {
    /// Every error found; any one of them keeps the bundle from activation.
    pub errors: Vec<BundleDiagnostic>,
    /// Problems that would not have kept the bundle out on their own.
    pub warnings: Vec<BundleDiagnostic>,
}

fn first(errors: &[BundleDiagnostic]) -> String {
    errors.first().map(ToString::to_string).unwrap_or_default()
}

impl BundleError {
    /// A rejection for one error and no warnings.
    pub fn single(diagnostic: BundleDiagnostic) -> Self {
        Self {
            errors: vec![diagnostic],
            warnings: Vec::new(),
        }
    }
}

/// The longest run of non-blank characters a message quotes whole.
pub const MAX_TOKEN_CHARS: usize = 64;
/// The longest message a diagnostic carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `text` with every token (a run between blanks or backticks) longer than
/// [`MAX_TOKEN_CHARS`] cut to its start and its length, then cut to [`MAX_MESSAGE_BYTES`].
/// Cedar quotes the offending token whole: a 100,000-character one made 200 KB of error
/// details, which common gRPC clients refuse as `RESOURCE_EXHAUSTED` instead of showing it.
pub fn clip(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_BYTES));
    let mut rest = text;
    while !rest.is_empty() && out.len() < MAX_MESSAGE_BYTES {
        let token_len = rest
            .find(|c: char| c.is_whitespace() || c == '`')
            .unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_len);
        let chars = token.chars().count();
        if chars > MAX_TOKEN_CHARS {
            out.extend(token.chars().take(MAX_TOKEN_CHARS));
            out.push_str(&format!("…({chars} characters)"));
        } else {
            out.push_str(token);
        }
        let mut separators = after.char_indices();
        match separators.next() {
            Some((_, c)) => {
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
            None => rest = after,
        }
    }
    if out.len() > MAX_MESSAGE_BYTES || !rest.is_empty() {
        let mut end = MAX_MESSAGE_BYTES.min(out.len());
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// 1-based line and column of a byte offset; an offset past the end points at the last position.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 999), (3, 2));
    }

    #[test]
    fn long_tokens_are_cut_to_their_start_and_length() {
        let token = "x".repeat(100_000);
        let clipped = clip(&format!("unexpected token `{token}` here"));
        assert_eq!(
            clipped,
            format!(
                "unexpected token `{}…(100000 characters)` here",
                "x".repeat(64)
            )
        );
        let many = "word ".repeat(10_000);
        assert!(clip(&many).len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert_eq!(clip("plain `short` text"), "plain `short` text");
    }

    #[test]
    fn display_is_file_line_column_message() {
        let d = BundleDiagnostic::at_offset("p.cedar", "x\ny", 2, "bad `y`");
        assert_eq!(d.to_string(), "p.cedar:2:1: bad `y`");
    }
}
