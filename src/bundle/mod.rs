//! Policy bundles: a Cedar schema, policies and an entity directory, validated as a whole and
//! then immutable. A [`PolicyBundle`] is the snapshot every decision reads.

mod annotations;
mod candidate_sets;
mod cases;
mod compile;
mod context;
mod contract;
mod diagnostic;
pub mod id_text;
mod index;
mod lifecycle;
mod nesting;
pub mod reach;
mod source;
mod task_type;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Entities, EntityUid,
    Policy, PolicyId, PolicySet, Request, Schema,
};

pub use annotations::{MAX_ANNOTATED_TTL_SECS, MAX_APPROVERS, PolicyMeta};
use candidate_sets::CandidateSets;
pub use cases::{Expectation, ExpectedDecision, TestCase};
pub use context::{ContextInput, TaskValueError};
pub use contract::{Contract, INVOKE_ACTION};
pub use diagnostic::{BundleDiagnostic, BundleError, clip};
use index::{Action, PolicyIndex, Subject};
pub use lifecycle::{
    AgentTerms, EXPIRES_ATTRIBUTE, Expiry, Lifecycles, OWNER_ATTRIBUTE, OWNER_TYPES, Owner,
};
pub use nesting::MAX_NESTING;
pub use source::{ENTITIES_FILE, SourceFile, SourceKind, TESTS_FILE, content_hash, read_dir};

/// The stack of the thread a bundle compiles on: reserved address space, touched only as deep
/// as a text makes the parser recurse.
pub const COMPILE_STACK_BYTES: usize = 256 * 1024 * 1024;

/// How long each phase of admitting a bundle took: reading the files (parsing the schema,
/// policies, entities and test cases), strict validation against the schema, building the
/// evaluation index, and running the bundle's own test cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Parsing every file.
    pub parse: std::time::Duration,
    /// Strict validation of the policies against the schema.
    pub validate: std::time::Duration,
    /// Building the index evaluation selects policies by.
    pub index: std::time::Duration,
    /// Running the bundle's test cases; zero until admission runs them.
    pub tests: std::time::Duration,
}

/// A validated, immutable policy bundle.
#[derive(Debug)]
pub struct PolicyBundle {
    version: String,
    schema: Schema,
    entities: Entities,
    /// In index order: `index` refers to policies by their position here.
    policies: Vec<Policy>,
    /// The same policies as one set, for unindexed evaluation.
    set: PolicySet,
    index: PolicyIndex,
    /// The policy sets of candidate lists already evaluated, so a repeated question reuses one
    /// rather than copying its policies (their source text included) into a new set.
    candidate_sets: CandidateSets,
    /// Every agent's owner and expiry, read once from the directory.
    lifecycles: Lifecycles,
    metas: HashMap<PolicyId, PolicyMeta>,
    contract: Contract,
    sources: Vec<SourceFile>,
    cases: Vec<TestCase>,
    warnings: Vec<BundleDiagnostic>,
    timings: Phases,
}

/// What Cedar said about one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether Cedar allowed the action: some permit was satisfied and no forbid was.
    pub allowed: bool,
    /// The satisfied permits when allowed, the satisfied forbids otherwise.
    pub policies: Vec<PolicyId>,
    /// Evaluation errors and request-validation errors. Baton fails closed on any of them.
    pub errors: Vec<String>,
    /// The policies whose evaluation failed, sorted: what an evaluation error is explained by.
    pub failed: Vec<PolicyId>,
}

impl PolicyBundle {
    /// Reads and compiles the bundle in `dir`.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        Self::compile(read_dir(dir)?)
    }

    /// Compiles bundle files. Nothing is kept unless every file parses, the policies pass strict
    /// validation against the schema, and every annotation is well-formed.
    ///
    /// The compile runs on a thread of its own with a [`COMPILE_STACK_BYTES`] stack: Cedar's
    /// parsers recurse once per level of nesting, and the nesting scan bounds only brackets
    /// (`if … then … else if …` and operator chains nest without them). A deep text then costs
    /// stack, not the process.
    pub fn compile(files: Vec<SourceFile>) -> Result<Self, BundleError> {
        let failed =
            |message: String| BundleError::single(BundleDiagnostic::in_file("<bundle>", message));
        std::thread::scope(|scope| {
            let compiling = std::thread::Builder::new()
                .name("bundle-compile".into())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn_scoped(scope, move || compile::compile(files))
                .map_err(|e| failed(format!("cannot start the compile thread: {e}")))?;
            compiling
                .join()
                .map_err(|_| failed("the compile failed unexpectedly".to_owned()))?
        })
    }

    /// The content address of the bundle's files.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The bundle's Cedar schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// What Baton resolved from the schema: entity types, the connection action and the scopes.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The entity directory of `entities.json`; without that file identities have no groups.
    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// Every agent's owner and expiry, as the agent lifecycle rules read them.
    pub fn lifecycles(&self) -> &Lifecycles {
        &self.lifecycles
    }

    /// How many policies the bundle holds.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// The bundle's policies in source order, each with its id (`@id`, or `file#n` without one).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The Baton annotations (`@ttl`, `@obligation`) of the policy `id`, if the bundle has it.
    pub fn meta(&self, id: &PolicyId) -> Option<&PolicyMeta> {
        self.metas.get(id)
    }

    /// The files the bundle was compiled from.
    pub fn sources(&self) -> &[SourceFile] {
        &self.sources
    }

    /// How long its compile's phases took; `tests` is zero here.
    pub fn compile_timings(&self) -> Phases {
        self.timings
    }

    /// The bundle's own test cases, from its tests files.
    pub fn cases(&self) -> &[TestCase] {
        &self.cases
    }

    /// The total size of the bundle's files, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.sources
            .iter()
            .map(|f| f.name.len() + f.text.len())
            .sum()
    }

    /// What the compile warned of, such as Cedar validation warnings or a bundle without
    /// policies; none of it kept the bundle out.
    pub fn warnings(&self) -> &[BundleDiagnostic] {
        &self.warnings
    }

    /// Evaluates each of `actions` for `principal` at `resource`, against the candidate policies
    /// the index selects. Answers exactly as [`Self::evaluate_unindexed`] does.
    pub fn evaluate(
        &self,
        principal: &EntityUid,
        actions: &[&EntityUid],
        resource: &EntityUid,
        context: &Context,
    ) -> Vec<Evaluation> {
        self.evaluate_in(&self.entities, principal, actions, resource, context)
    }

    /// As [`Self::evaluate`], over `entities` instead of the bundle's own directory: the
    /// directory with one resource described by the request ([`Self::with_resource`]).
    pub fn evaluate_in(
        &self,
        entities: &Entities,
        principal: &EntityUid,
        actions: &[&EntityUid],
        resource: &EntityUid,
        context: &Context,
    ) -> Vec<Evaluation> {
        let batch: Vec<Action<'_>> = actions.iter().map(|a| Action::new(a, entities)).collect();
        let candidates = self.index.candidates(
            &Subject::new(principal, entities),
            &batch,
            &Subject::new(resource, entities),
        );
        let authorizer = Authorizer::new();
        actions
            .iter()
            .zip(candidates)
            .map(|(&action, list)| {
                // Not applicable is known before any set is built.
                if !self.contract.applies(action, principal, resource) {
                    return Evaluation::not_applicable();
                }
                match self.candidate_set(list) {
                    Ok(set) => self.evaluate_one(
                        &authorizer,
                        &set,
                        entities,
                        principal,
                        action,
                        resource,
                        context,
                    ),
                    Err(e) => Evaluation::failed(e),
                }
            })
            .collect()
    }

    /// The policy set of `candidates` (indexes into `policies`), built once per distinct list.
    fn candidate_set(&self, candidates: Vec<u32>) -> Result<Arc<PolicySet>, String> {
        if let Some(set) = self.candidate_sets.get(candidates.as_slice()) {
            return Ok(set);
        }
        let selected = candidates
            .iter()
            .filter_map(|&i| self.policies.get(i as usize).cloned());
        let set = Arc::new(PolicySet::from_policies(selected).map_err(|e| e.to_string())?);
        self.candidate_sets.insert(candidates, Arc::clone(&set));
        Ok(set)
    }

    /// Evaluates against every policy of the bundle: the reference the index is tested against.
    pub fn evaluate_unindexed(
        &self,
        principal: &EntityUid,
        actions: &[&EntityUid],
        resource: &EntityUid,
        context: &Context,
    ) -> Vec<Evaluation> {
        self.evaluate_with(
            &self.set,
            &self.entities,
            principal,
            actions,
            resource,
            context,
        )
    }

    /// The directory with `resource` described by `properties`, for one evaluation: a request
    /// (an AuthZEN resource's `properties`) says what the resource is like, where the directory
    /// may not know it at all. It keeps the directory's parents of the resource, if any; its
    /// attributes are `properties`, checked against the schema. The directory is copied, so
    /// this costs in proportion to its size.
    pub fn with_resource(
        &self,
        resource: &EntityUid,
        properties: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Entities, context::TaskValueError> {
        let attrs = properties
            .iter()
            .map(|(k, v)| Ok((k.clone(), context::value(&format!("properties.{k}"), v)?)))
            .collect::<Result<HashMap<_, _>, context::TaskValueError>>()?;
        let parents = self
            .entities
            .get(resource)
            .map(|e| e.clone().into_inner().2)
            .unwrap_or_default();
        let entity = cedar_policy::Entity::new(resource.clone(), attrs, parents).map_err(|e| {
            context::TaskValueError {
                path: "properties".to_owned(),
                problem: clip_message(&e.to_string()),
            }
        })?;
        self.entities
            .clone()
            .upsert_entities([entity], Some(&self.schema))
            .map_err(|e| context::TaskValueError {
                path: "properties".to_owned(),
                problem: format!(
                    "do not fit the schema's `{}`: {}",
                    resource.type_name(),
                    clip_message(&e.to_string())
                ),
            })
    }

    fn evaluate_with(
        &self,
        set: &PolicySet,
        entities: &Entities,
        principal: &EntityUid,
        actions: &[&EntityUid],
        resource: &EntityUid,
        context: &Context,
    ) -> Vec<Evaluation> {
        let authorizer = Authorizer::new();
        actions
            .iter()
            .map(|&action| {
                if !self.contract.applies(action, principal, resource) {
                    return Evaluation::not_applicable();
                }
                self.evaluate_one(
                    &authorizer,
                    set,
                    entities,
                    principal,
                    action,
                    resource,
                    context,
                )
            })
            .collect()
    }

    /// One action's evaluation against `set`, the action applying to the principal and
    /// resource. The schema's `appliesTo` is checked by the callers rather than by Cedar's
    /// request validation, which costs more than the evaluation; the context was checked once.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_one(
        &self,
        authorizer: &Authorizer,
        set: &PolicySet,
        entities: &Entities,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        context: &Context,
    ) -> Evaluation {
        let request = Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            context.clone(),
            None,
        );
        match request {
            Ok(request) => {
                let response = authorizer.is_authorized(&request, set, entities);
                let mut policies: Vec<PolicyId> =
                    response.diagnostics().reason().cloned().collect();
                policies.sort_unstable();
                let mut failed: Vec<PolicyId> = response
                    .diagnostics()
                    .errors()
                    .map(|e| match e {
                        AuthorizationError::PolicyEvaluationError(e) => e.policy_id().clone(),
                    })
                    .collect();
                failed.sort_unstable();
                failed.dedup();
                Evaluation {
                    allowed: response.decision() == CedarDecision::Allow,
                    policies,
                    errors: response
                        .diagnostics()
                        .errors()
                        .map(ToString::to_string)
                        .collect(),
                    failed,
                }
            }
            Err(e) => Evaluation::failed(e.to_string()),
        }
    }
}

impl Evaluation {
    /// Stands in for an evaluation that produced no answer, which denies.
    pub fn missing() -> Self {
        Self::failed("no evaluation result".to_owned())
    }

    /// The action does not apply to these entity types, so no policy can permit it.
    fn not_applicable() -> Self {
        Self {
            allowed: false,
            policies: Vec::new(),
            errors: Vec::new(),
            failed: Vec::new(),
        }
    }

    fn failed(error: String) -> Self {
        Self {
            allowed: false,
            policies: Vec::new(),
            errors: vec![error],
            failed: Vec::new(),
        }
    }
}

/// A message of Cedar's, cut short: it may quote the values a request sent.
fn clip_message(message: &str) -> String {
    const MAX: usize = 240;
    let mut out: String = message.chars().take(MAX).collect();
    if out.len() < message.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use cedar_policy::{Context, EntityUid};

    use super::PolicyBundle;

    fn uid(text: &str) -> EntityUid {
        EntityUid::from_str(text).unwrap()
    }

    #[test]
    fn a_repeated_candidate_list_reuses_its_policy_set_and_answers_the_same() {
        let bundle = PolicyBundle::load(std::path::Path::new("policies")).unwrap();
        let caller = uid(r#"Agent::"user-assistant""#);
        let callee = uid(r#"Agent::"data-analyst""#);
        let invoke = uid(r#"Action::"invoke""#);
        let first = bundle.evaluate(&caller, &[&invoke], &callee, &Context::empty());
        let again = bundle.evaluate(&caller, &[&invoke], &callee, &Context::empty());
        assert_eq!(first, again);
        assert_eq!(first.len(), 1);
        assert_eq!(
            first,
            bundle.evaluate_unindexed(&caller, &[&invoke], &callee, &Context::empty())
        );

        let list = vec![0, 1];
        let built = bundle.candidate_set(list.clone()).unwrap();
        let reused = bundle.candidate_set(list).unwrap();
        assert!(Arc::ptr_eq(&built, &reused));
        let other = bundle.candidate_set(vec![1]).unwrap();
        assert!(!Arc::ptr_eq(&built, &other));
        assert_eq!(other.policies().count(), 1);
    }
}
