//! Turns bundle files into a validated [`PolicyBundle`], collecting every error with its location.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Instant;

use cedar_policy::{
    Entities, Entity, Policy, PolicyId, PolicySet, Schema, SchemaFragment, ValidationMode,
    Validator,
};
use serde_json::value::RawValue;

use super::annotations::{self, PolicyMeta};
use super::cases;
use super::contract::Contract;
use super::diagnostic::{BundleDiagnostic, BundleError};
use super::index::PolicyIndex;
use super::lifecycle::Lifecycles;
use super::nesting;
use super::source::{SourceFile, SourceKind, content_hash};
use super::{Phases, PolicyBundle};
use crate::identity::IdentityKind;

const BUNDLE: &str = "<bundle>";

/// Where a policy came from, for locating the errors that name it.
struct Origin<'f> {
    file: &'f SourceFile,
    offset: usize,
}

/// The most errors one rejection lists; the rest are counted. A mutated bundle can have
/// thousands, and each travels in the answer.
const MAX_ERRORS: usize = 100;

pub(super) fn compile(files: Vec<SourceFile>) -> Result<PolicyBundle, BundleError> {
    compile_all(files).map_err(|mut e| {
        for list in [&mut e.errors, &mut e.warnings] {
            if list.len() > MAX_ERRORS {
                let more = list.len() - MAX_ERRORS;
                list.truncate(MAX_ERRORS);
                list.push(BundleDiagnostic::in_file(
                    BUNDLE,
                    format!("and {more} more not listed"),
                ));
            }
        }
        e
    })
}

fn compile_all(files: Vec<SourceFile>) -> Result<PolicyBundle, BundleError> {
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let too_deep = nesting::too_deep(&files);
    if !too_deep.is_empty() {
        return Err(BundleError {
            errors: too_deep,
            warnings,
        });
    }

    let schema_and_contract = compile_schema(&files, &mut errors, &mut warnings);
    let before = errors.len();
    let (policies, metas, origins) = compile_policies(&files, &mut errors);
    let policies_compiled = errors.len() == before;
    let cases = cases::parse_all(&files, &mut errors);
    // Against policies that did not compile every id would look unknown.
    if policies_compiled {
        cases::check_policy_ids(
            &cases,
            &files,
            |id| origins.contains_key(&PolicyId::new(id)),
            &mut errors,
        );
    }

    let Some((schema, contract)) = schema_and_contract else {
        return Err(BundleError { errors, warnings });
    };
    let entities = compile_entities(&files, &schema, &mut errors);
    if !errors.is_empty() {
        return Err(BundleError { errors, warnings });
    }

    let set = match PolicySet::from_policies(policies.iter().cloned()) {
        Ok(set) => set,
        Err(e) => {
            errors.push(BundleDiagnostic::in_file(BUNDLE, e.to_string()));
            return Err(BundleError { errors, warnings });
        }
    };
    let parsed = Instant::now();
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        errors.extend(locate(&origins, e.policy_id(), e));
    }
    for w in result.validation_warnings() {
        warnings.extend(locate(&origins, w.policy_id(), w));
    }
    if !errors.is_empty() {
        return Err(BundleError { errors, warnings });
    }
    if policies.is_empty() {
        warnings.push(BundleDiagnostic::in_file(
            BUNDLE,
            "the bundle has no policies, so every request is denied",
        ));
    }

    let Some(entities) = entities else {
        return Err(BundleError { errors, warnings });
    };
    let validated = Instant::now();
    let index = PolicyIndex::build(&policies);
    let lifecycles = match contract.entity_type(&IdentityKind::Agent) {
        Some(agent) => {
            let (lifecycles, notes) = Lifecycles::read(&entities, agent, contract.invoke());
            let file = files
                .iter()
                .find(|f| f.kind() == Some(SourceKind::Entities))
                .map_or(BUNDLE, |f| f.name.as_str());
            warnings.extend(
                notes
                    .into_iter()
                    .map(|n| BundleDiagnostic::in_file(file, n)),
            );
            lifecycles
        }
        None => Lifecycles::default(),
    };
    let timings = Phases {
        parse: parsed.duration_since(started),
        validate: validated.duration_since(parsed),
        index: validated.elapsed(),
        tests: std::time::Duration::ZERO,
    };
    Ok(PolicyBundle {
        version: content_hash(&files),
        index,
        candidate_sets: super::CandidateSets::default(),
        lifecycles,
        timings,
        schema,
        entities,
        policies,
        set,
        metas,
        contract,
        sources: files,
        cases,
        warnings,
    })
}

fn compile_schema(
    files: &[SourceFile],
    errors: &mut Vec<BundleDiagnostic>,
    warnings: &mut Vec<BundleDiagnostic>,
) -> Option<(Schema, Contract)> {
    let schemas: Vec<&SourceFile> = files
        .iter()
        .filter(|f| f.kind() == Some(SourceKind::Schema))
        .collect();
    let [file] = schemas.as_slice() else {
        let message = if schemas.is_empty() {
            "a bundle needs one `*.cedarschema` file".to_owned()
        } else {
            format!(
                "a bundle has exactly one `*.cedarschema` file, found {}",
                schemas.len()
            )
        };
        errors.push(BundleDiagnostic::in_file(BUNDLE, message));
        return None;
    };
    match Schema::from_cedarschema_str(&file.text) {
        Ok((schema, schema_warnings)) => {
            for w in schema_warnings {
                warnings.extend(BundleDiagnostic::from_cedar(&file.name, &file.text, &w));
            }
            // The schema again, unresolved: it keeps the named types the contract resolves the
            // task type from.
            let fragment = match SchemaFragment::from_cedarschema_str(&file.text) {
                Ok((fragment, _)) => fragment,
                Err(e) => {
                    errors.extend(BundleDiagnostic::from_cedar(&file.name, &file.text, &e));
                    return None;
                }
            };
            match Contract::check(&schema, fragment) {
                Ok(contract) => Some((schema, contract)),
                Err(problems) => {
                    errors.extend(
                        problems
                            .into_iter()
                            .map(|p| BundleDiagnostic::in_file(&file.name, p)),
                    );
                    None
                }
            }
        }
        Err(e) => {
            errors.extend(BundleDiagnostic::from_cedar(&file.name, &file.text, &e));
            None
        }
    }
}

type Compiled<'f> = (
    Vec<Policy>,
    HashMap<PolicyId, PolicyMeta>,
    HashMap<PolicyId, Origin<'f>>,
);

fn compile_policies<'f>(
    files: &'f [SourceFile],
    errors: &mut Vec<BundleDiagnostic>,
) -> Compiled<'f> {
    let mut policies = Vec::new();
    let mut metas = HashMap::new();
    let mut origins: HashMap<PolicyId, Origin<'f>> = HashMap::new();
    for file in files
        .iter()
        .filter(|f| f.kind() == Some(SourceKind::Policies))
    {
        let set = match PolicySet::from_str(&file.text) {
            Ok(set) => set,
            Err(e) => {
                errors.extend(BundleDiagnostic::from_cedar(&file.name, &file.text, &e));
                continue;
            }
        };
        for template in set.templates() {
            let offset = file.text.find(&template.to_cedar()).unwrap_or(0);
            errors.push(BundleDiagnostic::at_offset(
                &file.name,
                &file.text,
                offset,
                "policy templates are not supported in bundles; write static policies",
            ));
        }
        // Policies come back in source order; each one's verbatim text finds its position.
        let mut cursor = 0;
        for (n, policy) in set.policies().enumerate() {
            let text = policy.to_cedar();
            let offset = text
                .as_deref()
                .and_then(|t| find_code(&file.text, cursor, t))
                .unwrap_or(cursor);
            cursor = offset + text.as_deref().map_or(0, str::len);
            let at = |message: String| {
                BundleDiagnostic::at_offset(&file.name, &file.text, offset, message)
            };
            let annotated = annotations::id(policy);
            let id = PolicyId::new(
                annotated.map_or_else(|| format!("{}#{}", file.name, n + 1), str::to_owned),
            );
            match annotations::read(policy) {
                Ok(meta) => {
                    metas.insert(id.clone(), meta);
                }
                // A policy with an `@id` is named too; the location alone names the others.
                Err(problems) => {
                    errors.extend(problems.into_iter().map(|problem| match annotated {
                        Some(_) => at(format!("policy `{id}`: {problem}")),
                        None => at(problem),
                    }))
                }
            }
            if let Some(first) = origins.get(&id) {
                let (line, column) = {
                    let d = BundleDiagnostic::at_offset(
                        &first.file.name,
                        &first.file.text,
                        first.offset,
                        "",
                    );
                    (d.line, d.column)
                };
                errors.push(at(format!(
                    "policy id `{id}` is already used at {}:{line}:{column}",
                    first.file.name
                )));
                continue;
            }
            origins.insert(id.clone(), Origin { file, offset });
            policies.push(policy.new_id(id));
        }
    }
    (policies, metas, origins)
}

/// The first occurrence of `needle` at or after `from` that is not inside a `//` comment.
fn find_code(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    let mut start = from;
    while let Some(found) = haystack.get(start..)?.find(needle) {
        let at = start + found;
        if !in_line_comment(haystack, at) {
            return Some(at);
        }
        start = at + needle.len().max(1);
    }
    None
}

/// Whether `at` follows a `//` on its line outside a string literal.
fn in_line_comment(text: &str, at: usize) -> bool {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut in_string = false;
    let mut escaped = false;
    let mut previous_slash = false;
    for c in text[line_start..at].chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && previous_slash {
            return true;
        }
        previous_slash = !in_string && c == '/';
    }
    false
}

fn locate(
    origins: &HashMap<PolicyId, Origin<'_>>,
    id: &PolicyId,
    diag: &dyn miette::Diagnostic,
) -> Vec<BundleDiagnostic> {
    match origins.get(id) {
        Some(origin) => {
            let mut located =
                BundleDiagnostic::from_cedar(&origin.file.name, &origin.file.text, diag);
            // A diagnostic without a span points at its policy rather than the file's start.
            if diag.labels().is_none() {
                for d in &mut located {
                    let at = BundleDiagnostic::at_offset(
                        &origin.file.name,
                        &origin.file.text,
                        origin.offset,
                        "",
                    );
                    d.line = at.line;
                    d.column = at.column;
                }
            }
            located
        }
        None => vec![BundleDiagnostic::in_file(BUNDLE, diag.to_string())],
    }
}

fn compile_entities(
    files: &[SourceFile],
    schema: &Schema,
    errors: &mut Vec<BundleDiagnostic>,
) -> Option<Entities> {
    let Some(file) = files
        .iter()
        .find(|f| f.kind() == Some(SourceKind::Entities))
    else {
        // Without a directory only the schema's actions exist: identities have no groups.
        return match Entities::from_json_str("[]", Some(schema)) {
            Ok(entities) => Some(entities),
            Err(e) => {
                errors.push(BundleDiagnostic::in_file(BUNDLE, e.to_string()));
                None
            }
        };
    };
    let elements: Vec<&RawValue> = match serde_json::from_str(&file.text) {
        Ok(elements) => elements,
        Err(e) => {
            errors.push(BundleDiagnostic {
                file: file.name.clone(),
                line: e.line().max(1),
                column: e.column().max(1),
                message: super::diagnostic::clip(&format!("not a JSON array of entities: {e}")),
            });
            return None;
        }
    };
    match Entities::from_json_str(&file.text, Some(schema)) {
        Ok(entities) => Some(entities),
        Err(e) => {
            // Cedar names the problem but not where it is: find the first entity that fails
            // alone, or else the first repeated uid.
            let offset = elements
                .iter()
                .copied()
                .find(|raw| Entity::from_json_str(raw.get(), Some(schema)).is_err())
                .or_else(|| first_repeated_uid(&elements))
                .map_or(0, |raw| {
                    raw.get().as_ptr() as usize - file.text.as_ptr() as usize
                });
            let mut unique = HashSet::new();
            for d in BundleDiagnostic::from_cedar(&file.name, &file.text, &e) {
                if unique.insert(d.message.clone()) {
                    errors.push(BundleDiagnostic::at_offset(
                        &file.name, &file.text, offset, d.message,
                    ));
                }
            }
            None
        }
    }
}

fn first_repeated_uid<'a>(elements: &[&'a RawValue]) -> Option<&'a RawValue> {
    let mut seen = HashSet::new();
    elements.iter().copied().find(|raw| {
        serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| v.get("uid").map(ToString::to_string))
            .is_some_and(|uid| !seen.insert(uid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema too deep for Cedar's parser is a bundle error, not a stack overflow.
    #[test]
    fn a_schema_nested_500_deep_is_refused_before_parsing() {
        let task = format!("{}leaf: Long{}", "n: { ".repeat(499), " }".repeat(499));
        let text = format!(
            "entity User; entity Service; entity Agent; type Task = {{ {task} }};\n\
             action invoke appliesTo {{ principal: [User, Service, Agent], resource: Agent, \
             context: {{ task: Task }} }};"
        );
        let files = vec![SourceFile {
            name: "deep.cedarschema".into(),
            text,
        }];
        let Err(error) = super::compile(files) else {
            panic!("a 500-deep schema compiled");
        };
        let messages: Vec<String> = error.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "deep.cedarschema:1:216: nesting deeper than 32 levels of brackets; Baton refuses such a file unparsed"
            ]
        );
    }
}
