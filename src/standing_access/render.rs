//! The report as people read it.

use std::fmt::Write as _;
use std::time::Duration;

use super::{AgentLine, StandingAccessReport};

impl StandingAccessReport {
    /// The report as text: a summary, then each list under its heading.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let from = self.from.as_deref().unwrap_or("the first record");
        let until = self.until.as_deref().unwrap_or("the last record");
        let _ = writeln!(out, "standing access of bundle {}", self.bundle_version);
        let _ = writeln!(out, "  window          {from} to {until}");
        let _ = writeln!(out, "  decisions       {}", self.decisions);
        let _ = writeln!(out, "  agents          {}", self.agents);
        match self.grants {
            Some(grants) => {
                let _ = writeln!(out, "  grants          {grants}");
            }
            None => {
                let why = self.grants_not_enumerated.as_deref().unwrap_or("");
                let _ = writeln!(out, "  grants          {why}");
            }
        }

        let _ = writeln!(
            out,
            "\nagents never seen in the window ({}):",
            self.unseen_agents.len()
        );
        for agent in &self.unseen_agents {
            let _ = writeln!(out, "  {}", agent_line(agent));
        }
        if self.grants.is_some() {
            let _ = writeln!(
                out,
                "\ngrants the policies allow that nobody used ({}):",
                self.unused_grants.len()
            );
            for g in &self.unused_grants {
                let _ = writeln!(out, "  {} -> {}  {}", g.caller, g.callee, g.scope);
            }
        }
        let within = humantime::format_duration(Duration::from_secs(self.expiring_within_secs));
        let _ = writeln!(
            out,
            "\nagents expired or expiring within {within} ({}):",
            self.expiring.len()
        );
        for e in &self.expiring {
            let state = if e.expired { "  (expired)" } else { "" };
            let _ = writeln!(out, "  {}{state}", agent_line(&e.agent));
        }
        out
    }
}

fn agent_line(agent: &AgentLine) -> String {
    let owner = match (&agent.owner, agent.owner_missing) {
        (Some(owner), false) => format!("owner {owner}"),
        (Some(owner), true) => format!("owner {owner} (not in the directory)"),
        (None, _) => "no owner".to_owned(),
    };
    let expires = agent
        .expires
        .as_deref()
        .map_or_else(String::new, |at| format!(", expires {at}"));
    format!("Agent {}  {owner}{expires}", agent.agent)
}
