//! Swarm placement constraints (`node.role==worker`, `node.labels.zoe!=no`, ...), checked when
//! the master starts and evaluated against each node, so that Zoe counts in its capacity only the
//! nodes where Swarm may place its containers. The syntax and meaning are Swarm's: `==` or `!=`
//! on `node.id`, `node.hostname`, `node.role`, `node.platform.os`, `node.platform.arch`,
//! `node.labels.<key>` or `engine.labels.<key>`; values compare without regard to case; a label a
//! node does not have is unequal to every value.

use std::collections::BTreeMap;

/// What a node is known by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub os: String,
    pub arch: String,
    pub labels: BTreeMap<String, String>,
    pub engine_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Id,
    Hostname,
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

/// One constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    key: Key,
    equal: bool,
    value: String,
    /// As given, for Swarm.
    pub text: String,
}

impl Constraint {
    /// Parses `KEY==VALUE` or `KEY!=VALUE`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let (key, equal, value) = match (text.split_once("!="), text.split_once("==")) {
            (Some((k, v)), _) => (k, false, v),
            (None, Some((k, v))) => (k, true, v),
            (None, None) => {
                return Err(format!("placement constraint {text:?} has no == or != (e.g. node.role==worker)"));
            }
        };
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return Err(format!("placement constraint {text:?} has no value"));
        }
        let label = |prefix: &str| key.strip_prefix(prefix).filter(|l| !l.is_empty()).map(str::to_string);
        let key = match key {
            "node.id" => Key::Id,
            "node.hostname" => Key::Hostname,
            "node.role" => Key::Role,
            "node.platform.os" => Key::Os,
            "node.platform.arch" => Key::Arch,
            _ => match (label("node.labels."), label("engine.labels.")) {
                (Some(l), _) => Key::NodeLabel(l),
                (None, Some(l)) => Key::EngineLabel(l),
                _ => {
                    return Err(format!(
                        "placement constraint {text:?}: unknown key {key:?}; use node.id, node.hostname, node.role, \
                         node.platform.os, node.platform.arch, node.labels.<key> or engine.labels.<key>"
                    ))
                }
            },
        };
        Ok(Constraint {
            key,
            equal,
            value: value.to_string(),
            text: format!("{}{}{value}", key_text(text), if equal { "==" } else { "!=" }),
        })
    }

    /// Whether `node` satisfies it.
    pub fn matches(&self, node: &NodeFacts) -> bool {
        let have = match &self.key {
            Key::Id => Some(node.id.as_str()),
            Key::Hostname => Some(node.hostname.as_str()),
            Key::Role => Some(node.role.as_str()),
            Key::Os => Some(node.os.as_str()),
            Key::Arch => Some(node.arch.as_str()),
            Key::NodeLabel(l) => node.labels.get(l).map(String::as_str),
            Key::EngineLabel(l) => node.engine_labels.get(l).map(String::as_str),
        };
        let same = have.is_some_and(|h| h.eq_ignore_ascii_case(&self.value));
        same == self.equal
    }
}

/// The key part of a constraint's text, trimmed.
fn key_text(text: &str) -> &str {
    text.split(['=', '!']).next().unwrap_or(text).trim()
}

/// Whether `node` satisfies every constraint.
pub fn all_match(constraints: &[Constraint], node: &NodeFacts) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeFacts {
        NodeFacts {
            id: "abc123".into(),
            hostname: "zoe-node-2".into(),
            role: "worker".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            labels: BTreeMap::from([("zoe".into(), "yes".into())]),
            engine_labels: BTreeMap::new(),
        }
    }

    #[test]
    fn constraints_match_as_swarm_matches_them() {
        let m = |t: &str| Constraint::parse(t).unwrap().matches(&node());
        assert!(m("node.role==worker") && m("node.role == Worker") && !m("node.role==manager"));
        assert!(m("node.role!=manager") && !m("node.role!=worker"));
        assert!(m("node.hostname!=zoe-node-1") && m("node.id==ABC123"));
        assert!(m("node.labels.zoe==yes") && !m("node.labels.zoe!=yes"));
        assert!(!m("node.labels.gpu==yes") && m("node.labels.gpu!=yes"), "a missing label equals nothing");
        assert!(m("node.platform.os==linux") && m("node.platform.arch!=aarch64"));
        assert!(!m("engine.labels.storage==ssd"));
        assert_eq!(Constraint::parse(" node.role == worker ").unwrap().text, "node.role==worker");
    }

    #[test]
    fn bad_constraints_say_what_to_write() {
        for (t, says) in [
            ("node.role", "no == or !="),
            ("node.role==", "no value"),
            ("node.colour==red", "unknown key"),
            ("node.labels.==x", "unknown key"),
        ] {
            let e = Constraint::parse(t).unwrap_err();
            assert!(e.contains(says), "{t}: {e}");
        }
    }
}
