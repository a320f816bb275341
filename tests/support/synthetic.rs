//! Generated bundles shaped like an enterprise agent directory: agent-pair allowlists and scope
//! grants, a few group-wide permits and conditional forbids. Shared by the benches and tests.

use std::fmt::Write as _;

use baton::bundle::{PolicyBundle, SourceFile};

pub const SCHEMA: &str = r#"
entity Group in [Group];
entity User in [Group];
entity Service in [Group];
entity Agent in [Group];
type Identity = { kind: String, id: String };
type Task = { amount?: Long };
type BatonContext = {
  on_behalf_of: Identity, caller: Identity, delegated: Bool, depth: Long,
  chain: Set<String>, agents: Set<Agent>, task: Task,
};
action invoke appliesTo { principal: [User, Service, Agent], resource: [Agent], context: BatonContext };
action all;
action read, write in [all] appliesTo { principal: [User, Service, Agent], resource: [Agent], context: BatonContext };
action admin appliesTo { principal: [User, Service, Agent], resource: [Agent], context: BatonContext };
"#;

/// Agents in a bundle of `policies` policies: each agent appears in about four policies.
pub fn agents_for(policies: usize) -> usize {
    (policies / 4).max(8)
}

/// The agent that agent `i` is allowed to call.
pub fn partner(i: usize, agents: usize) -> usize {
    (i * 7 + 1) % agents
}

/// A bundle of about `policies` policies over `agents_for(policies)` agents in 16 teams.
pub fn bundle(policies: usize) -> PolicyBundle {
    let agents = agents_for(policies);
    let mut text = String::with_capacity(policies * 160);
    // Fixed policies that every request may meet.
    text.push_str(
        "permit(principal in Group::\"employees\", action in Action::\"all\", resource in Group::\"team-0\");\n\
         permit(principal in Group::\"employees\", action == Action::\"read\", resource);\n\
         forbid(principal, action == Action::\"write\", resource) when { context.task has amount && context.task.amount > 1000 };\n\
         forbid(principal is Agent in Group::\"quarantined\", action, resource);\n",
    );
    let mut n = 4;
    let mut i = 0;
    while n < policies {
        let (p, r) = (i % agents, partner(i % agents, agents));
        if n % 2 == 0 {
            let _ = writeln!(
                text,
                "permit(principal == Agent::\"agent-{p}\", action == Action::\"invoke\", resource == Agent::\"agent-{r}\") when {{ context.depth <= 4 }};"
            );
        } else {
            let _ = writeln!(
                text,
                "permit(principal == Agent::\"agent-{p}\", action in [Action::\"read\", Action::\"write\"], resource == Agent::\"agent-{r}\");"
            );
            i += 1;
        }
        n += 1;
    }
    let mut entities = String::from("[");
    entities.push_str(r#"{"uid":{"type":"Group","id":"employees"},"attrs":{},"parents":[]},"#);
    entities.push_str(r#"{"uid":{"type":"Group","id":"quarantined"},"attrs":{},"parents":[]},"#);
    entities.push_str(r#"{"uid":{"type":"User","id":"alice"},"attrs":{},"parents":[{"type":"Group","id":"employees"}]}"#);
    for t in 0..16 {
        let _ = write!(
            entities,
            r#",{{"uid":{{"type":"Group","id":"team-{t}"}},"attrs":{{}},"parents":[]}}"#
        );
    }
    for a in 0..agents {
        let _ = write!(
            entities,
            r#",{{"uid":{{"type":"Agent","id":"agent-{a}"}},"attrs":{{}},"parents":[{{"type":"Group","id":"team-{}"}}]}}"#,
            a % 16
        );
    }
    entities.push(']');
    let files = vec![
        SourceFile {
            name: "schema.cedarschema".into(),
            text: SCHEMA.into(),
        },
        SourceFile {
            name: "policies.cedar".into(),
            text,
        },
        SourceFile {
            name: "entities.json".into(),
            text: entities,
        },
    ];
    match PolicyBundle::compile(files) {
        Ok(bundle) => bundle,
        Err(e) => panic!("the synthetic bundle must compile: {e}"),
    }
}
