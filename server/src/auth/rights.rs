//! Rights: what a token may do, as `RESOURCE:PATTERN:ACTION` strings.
//!
//! ```text
//! topic:orders*:read       fetch, long-poll, SSE, describe
//! topic:orders*:write      produce, describe
//! topic:orders*:admin      create, delete (and read, write)
//! processor:etl-*:read     status, logs
//! processor:etl-*:operate  pause, resume (and read)
//! processor:etl-*:deploy   deploy, redeploy, delete (and operate); the deployment also needs
//!                          read on its input and write on its outputs
//! module:*:read            list modules
//! module:*:upload          upload and delete modules (and read)
//! metrics:*:read           GET /metrics
//! admin                    everything, tokens included
//! ```
//! A pattern is a name, `*`, or a name with `*` at its start, its end or both (names never
//! contain `*`). `ACTION` may be `*` for every action of the resource.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a right applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Processor,
    Module,
    Metrics,
}

/// What a right allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Admin,
    Operate,
    Deploy,
    Upload,
    /// Every action of the resource.
    Any,
}

impl Resource {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "topic" => Self::Topic,
            "processor" => Self::Processor,
            "module" => Self::Module,
            "metrics" => Self::Metrics,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Processor => "processor",
            Self::Module => "module",
            Self::Metrics => "metrics",
        }
    }

    /// The actions this resource has.
    fn actions(self) -> &'static [Action] {
        match self {
            Self::Topic => &[Action::Read, Action::Write, Action::Admin],
            Self::Processor => &[Action::Read, Action::Operate, Action::Deploy],
            Self::Module => &[Action::Read, Action::Upload],
            Self::Metrics => &[Action::Read],
        }
    }
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => Self::Read,
            "write" => Self::Write,
            "admin" => Self::Admin,
            "operate" => Self::Operate,
            "deploy" => Self::Deploy,
            "upload" => Self::Upload,
            "*" => Self::Any,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
            Self::Operate => "operate",
            Self::Deploy => "deploy",
            Self::Upload => "upload",
            Self::Any => "*",
        }
    }

    /// Whether holding `self` grants `wanted`.
    fn grants(self, wanted: Action) -> bool {
        use Action::*;
        self == wanted
            || matches!(
                (self, wanted),
                (Any, _) | (Admin, Read | Write) | (Operate, Read) | (Deploy, Read | Operate) | (Upload, Read)
            )
    }
}

/// One right of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Right {
    /// Everything, token management included.
    Admin,
    Grant {
        resource: Resource,
        pattern: String,
        action: Action,
    },
}

impl Right {
    /// Parses `RESOURCE:PATTERN:ACTION` or `admin`; the error says what is allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "admin" {
            return Ok(Self::Admin);
        }
        let parts: Vec<&str> = s.split(':').collect();
        let [resource, pattern, action] = parts.as_slice() else {
            return Err(format!(
                "right '{s}' is not RESOURCE:PATTERN:ACTION (for example topic:orders*:read) or admin"
            ));
        };
        let resource = Resource::parse(resource)
            .ok_or_else(|| format!("right '{s}': resource must be topic, processor, module or metrics"))?;
        let action = Action::parse(action).ok_or_else(|| format!("right '{s}': unknown action '{action}'"))?;
        if action != Action::Any && !resource.actions().contains(&action) {
            let names: Vec<&str> = resource.actions().iter().map(|a| a.name()).collect();
            return Err(format!(
                "right '{s}': a {} has the actions {} (or *)",
                resource.name(),
                names.join(", ")
            ));
        }
        if matches!(resource, Resource::Module | Resource::Metrics) && *pattern != "*" {
            return Err(format!(
                "right '{s}': {} rights apply to all of them: write {}:*:{}",
                resource.name(),
                resource.name(),
                action.name()
            ));
        }
        let inner = pattern.trim_start_matches('*').trim_end_matches('*');
        if pattern.is_empty() || inner.contains('*') || pattern.len() > 256 {
            return Err(format!(
                "right '{s}': the pattern is a name, with * at its start, its end or both"
            ));
        }
        Ok(Self::Grant {
            resource,
            pattern: (*pattern).to_owned(),
            action,
        })
    }

    /// Whether this right allows `action` on the `resource` called `name`.
    pub fn allows(&self, resource: Resource, name: &str, action: Action) -> bool {
        match self {
            Self::Admin => true,
            Self::Grant {
                resource: r,
                pattern,
                action: a,
            } => *r == resource && a.grants(action) && matches(pattern, name),
        }
    }

    /// Whether this right grants `action` (`Any`: anything) on some `resource`.
    pub fn on(&self, resource: Resource, action: Action) -> bool {
        match self {
            Self::Admin => true,
            Self::Grant {
                resource: r, action: a, ..
            } => *r == resource && (action == Action::Any || a.grants(action)),
        }
    }

    /// Whether this right allows anything at all on the `resource` called `name`.
    pub fn touches(&self, resource: Resource, name: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Grant {
                resource: r, pattern, ..
            } => *r == resource && matches(pattern, name),
        }
    }
}

/// Whether `name` matches `pattern` (`*` at either end matches any text).
fn matches(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(rest), _) if rest.ends_with('*') => name.contains(&rest[..rest.len() - 1]),
        (Some(suffix), _) => name.ends_with(suffix),
        (None, Some(prefix)) => name.starts_with(prefix),
        (None, None) => name == pattern,
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Grant {
                resource,
                pattern,
                action,
            } => write!(f, "{}:{pattern}:{}", resource.name(), action.name()),
        }
    }
}

/// The right `action` on `resource` `name` as text, for messages.
pub fn describe(resource: Resource, name: &str, action: Action) -> String {
    format!("{}:{name}:{}", resource.name(), action.name())
}

impl Serialize for Right {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Right {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_at_either_end() {
        assert!(matches("*", "x"));
        assert!(matches("orders*", "orders-eu"));
        assert!(!matches("orders*", "my-orders"));
        assert!(matches("*-dlq", "etl-dlq"));
        assert!(matches("*eu*", "orders-eu-1"));
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders2"));
    }

    #[test]
    fn actions_imply_the_lesser_ones_of_their_resource_only() {
        let r = Right::parse("topic:orders*:admin").unwrap();
        assert!(r.allows(Resource::Topic, "orders-1", Action::Read));
        assert!(r.allows(Resource::Topic, "orders-1", Action::Write));
        assert!(!r.allows(Resource::Topic, "users", Action::Read));
        assert!(!r.allows(Resource::Processor, "orders-1", Action::Read));
        let w = Right::parse("topic:*:write").unwrap();
        assert!(!w.allows(Resource::Topic, "t", Action::Read), "a writer does not read");
        let d = Right::parse("processor:etl:deploy").unwrap();
        assert!(d.allows(Resource::Processor, "etl", Action::Operate));
        assert!(Right::Admin.allows(Resource::Metrics, "*", Action::Read));
    }

    #[test]
    fn bad_rights_say_what_is_allowed() {
        for (bad, says) in [
            ("topic:x", "RESOURCE:PATTERN:ACTION"),
            ("table:x:read", "resource must be"),
            ("topic:x:deploy", "read, write, admin"),
            ("topic:a*b:read", "pattern"),
            ("topic::read", "pattern"),
        ] {
            let e = Right::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let r = Right::parse("processor:etl-*:operate").unwrap();
        assert_eq!(r.to_string(), "processor:etl-*:operate");
    }
}
