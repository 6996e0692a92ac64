//! The interlocks (docs/SAFETY.md): stop, restart and drain keep a quorum; installs keep the version skew
//! policy; a leadership transfer goes to a node as new and as caught up as the leader. Here are the rules
//! and their verdict on one survey's members, with no I/O; `Cluster::interlock` reads the members and asks.

use semver::Version;

use crate::model::policy::{parse_version, quorum_after, skew_conflicts};
use crate::model::types::CAUGHT_UP_MS;
use crate::model::Member;
use crate::transport::host::HostOp;

/// The rules the interlocks enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Stop, restart and drain leave a quorum of members up, healthy, joined and caught up.
    Quorum,
    /// An install keeps every running member within one minor version.
    Skew,
    /// Leadership goes only to a node as new as the leader and caught up.
    TransferTarget,
}

impl Rule {
    /// The rule's name as messages, the journal and `e.rule` in a script say it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Quorum => "quorum",
            Rule::Skew => "version skew",
            Rule::TransferTarget => "transfer target",
        }
    }
}

/// An interlock's verdict against an operation: the rule and a sentence saying why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub rule: Rule,
    /// The operation: "node3: stop".
    pub subject: String,
    /// What it would break, naming the members counted.
    pub reason: String,
    /// The whole refusal: the reason, that nothing was changed, the rule, and the override.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An operation an interlock guards.
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<'a> {
    /// `op` ("stop", "restart", "drain") takes `id` out of service.
    TakeDown { id: &'a str, op: &'static str },
    /// `op` ("install", "stage", "activate") puts `version` on `id`.
    Version {
        id: &'a str,
        op: &'static str,
        version: &'a Version,
    },
    /// Leadership moves to `to`.
    Transfer { to: &'a str },
}

impl Guarded<'_> {
    /// The interlock a host operation falls under. Staging is held to the skew policy too: a build
    /// the cluster could never run is refused before it costs a compile.
    pub fn of_host<'a>(id: &'a str, op: &'a HostOp) -> Option<Guarded<'a>> {
        match op {
            HostOp::Stop => Some(Guarded::TakeDown { id, op: "stop" }),
            HostOp::Restart => Some(Guarded::TakeDown { id, op: "restart" }),
            HostOp::Install(v) | HostOp::Stage(v) | HostOp::Activate(v) => Some(Guarded::Version {
                id,
                op: op.name(),
                version: v,
            }),
            HostOp::Start | HostOp::Exec(_) => None,
        }
    }

    /// The operation as messages name it: "node3: stop".
    fn subject(&self) -> String {
        match self {
            Guarded::TakeDown { id, op } => format!("{id}: {op}"),
            Guarded::Version { id, op, version } => format!("{id}: {op} {version}"),
            Guarded::Transfer { to } => format!("{to}: transfer leadership"),
        }
    }

    /// How a script overrides this interlock, for the refusal's last sentence.
    fn override_hint(&self) -> String {
        match self {
            Guarded::TakeDown { id, op } => format!("node::{op}(\"{id}\", #{{force: true}})"),
            Guarded::Version { id, op, version } => {
                format!("node::{op}(\"{id}\", \"{version}\", #{{force: true}})")
            }
            Guarded::Transfer { to } => {
                format!("raft::transfer_leadership(\"{to}\", #{{force: true}})")
            }
        }
    }

    /// The node the operation names.
    pub fn node(&self) -> &str {
        match self {
            Guarded::TakeDown { id, .. } | Guarded::Version { id, .. } => id,
            Guarded::Transfer { to } => to,
        }
    }

    /// The interlock's verdict on `members` (one survey): `Some(refusal)` when the operation would break
    /// its rule.
    pub fn verdict(&self, members: &[Member]) -> Option<Refusal> {
        let (rule, reason) = match self {
            Guarded::TakeDown { id, op } => take_down(members, id, op),
            Guarded::Version { id, version, .. } => version_skew(members, id, version),
            Guarded::Transfer { to } => transfer_target(members, to),
        }?;
        let subject = self.subject();
        Some(Refusal {
            rule,
            message: format!(
                "{subject} refused by the {} interlock: {reason}. Nothing was changed. In an emergency, override it with {}",
                rule.name(),
                self.override_hint()
            ),
            subject,
            reason,
        })
    }
}

/// The quorum interlock: taking `id` out must leave a quorum of members up, healthy, joined and caught
/// up. An operation that does not change that count (the node is already down; a drain of a node that
/// does not count) is not refused for it.
fn take_down(members: &[Member], id: &str, op: &str) -> Option<(Rule, String)> {
    let target = members.iter().find(|m| m.id == id)?;
    let changes = match op {
        "drain" => crate::model::policy::counts_for_quorum(target),
        _ => target.state != "down",
    };
    let q = quorum_after(members, id);
    if !changes || q.holds() {
        return None;
    }
    let counted = if q.counted.is_empty() {
        "none".to_string()
    } else {
        q.counted.join(", ")
    };
    let others: String = q
        .not_counted
        .iter()
        .map(|(id, why)| format!("; {id} {why}"))
        .collect();
    Some((
        Rule::Quorum,
        format!(
            "afterwards only {} of {} members would be up, healthy, joined and caught up ({counted}{others}), and the cluster needs {} for quorum",
            q.counted.len(),
            q.members,
            q.quorum
        ),
    ))
}

/// The skew interlock: after the install every running member is within one minor version.
fn version_skew(members: &[Member], id: &str, v: &Version) -> Option<(Rule, String)> {
    let far = skew_conflicts(members, id, v);
    if far.is_empty() {
        return None;
    }
    let named: Vec<String> = far.iter().map(|(id, v)| format!("{id} runs {v}")).collect();
    Some((
        Rule::Skew,
        format!(
            "{}, more than one minor version from {v}; the skew policy allows at most one minor version between running members",
            named.join(", ")
        ),
    ))
}

/// The transfer interlock: the target is not older than the leader, and it is caught up. A target that
/// is down is left to the cluster to refuse.
fn transfer_target(members: &[Member], to: &str) -> Option<(Rule, String)> {
    let target = members.iter().find(|m| m.id == to)?;
    if target.state == "down" {
        return None;
    }
    let leader = members
        .iter()
        .find(|m| m.role == "leader" && m.state != "down" && m.id != to)?;
    let refuse = |why: String| Some((Rule::TransferTarget, why));
    if let (Ok(t), Ok(l)) = (
        parse_version(&target.version),
        parse_version(&leader.version),
    ) {
        if t < l {
            return refuse(format!(
                "{to} runs {t}, older than the leader {}'s {l}: the older version may not read what the leader wrote",
                leader.id
            ));
        }
    }
    if target.replication_lag_ms > CAUGHT_UP_MS {
        return refuse(format!(
            "{to} is catching up, lag {} ms (limit {CAUGHT_UP_MS} ms): it would lead with an old log",
            target.replication_lag_ms
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, role: &str, state: &str, lag: i64, version: &str) -> Member {
        Member {
            id: id.into(),
            address: String::new(),
            role: role.into(),
            state: state.into(),
            healthy: state != "down",
            version: version.into(),
            commit_index: 0,
            applied_index: 0,
            replication_lag_ms: lag,
        }
    }

    #[test]
    fn taking_down_is_refused_only_when_it_changes_the_count_below_quorum() {
        let ms = [
            member("node1", "leader", "up", 0, "0.10.4"),
            member("node2", "follower", "down", 0, "0.10.4"),
            member("node3", "follower", "drained", 0, "0.10.4"),
        ];
        // node2 is already down: stopping it again changes nothing.
        assert_eq!(take_down(&ms, "node2", "stop"), None);
        // node3 is drained, so it does not count, but it still votes: stopping it is refused.
        let (rule, why) = take_down(&ms, "node3", "stop").unwrap();
        assert_eq!(rule, Rule::Quorum);
        assert!(
            why.contains("only 1 of 3") && why.contains("node2 down"),
            "{why}"
        );
        // Draining it again does not change the count.
        assert_eq!(take_down(&ms, "node3", "drain"), None);
        assert!(take_down(&ms, "node1", "drain").is_some());
    }

    #[test]
    fn a_transfer_target_must_be_as_new_and_caught_up() {
        let ms = [
            member("node1", "leader", "up", 0, "0.11.0"),
            member("node2", "follower", "up", 0, "0.10.4"),
            member("node3", "follower", "up", 900, "0.11.0"),
            member("node4", "follower", "down", 0, "0.10.4"),
            member("node5", "follower", "up", 0, "0.11.0"),
        ];
        assert!(transfer_target(&ms, "node2")
            .unwrap()
            .1
            .contains("older than the leader node1's"));
        assert!(transfer_target(&ms, "node3")
            .unwrap()
            .1
            .contains("lag 900 ms"));
        // Down: left to the cluster to refuse.
        assert_eq!(transfer_target(&ms, "node4"), None);
        assert_eq!(transfer_target(&ms, "node5"), None);
        assert_eq!(transfer_target(&ms, "node1"), None);
    }

    #[test]
    fn a_refusal_names_the_operation_the_rule_and_the_override() {
        let ms = [
            member("node1", "leader", "up", 0, "0.10.4"),
            member("node2", "follower", "down", 0, "0.10.4"),
            member("node3", "follower", "up", 0, "0.10.4"),
        ];
        let stop = Guarded::TakeDown {
            id: "node3",
            op: "stop",
        };
        assert_eq!(stop.node(), "node3");
        let r = stop.verdict(&ms).unwrap();
        assert_eq!((r.rule, r.subject.as_str()), (Rule::Quorum, "node3: stop"));
        assert_eq!(
            r.message,
            format!(
                "node3: stop refused by the quorum interlock: {}. Nothing was changed. In an emergency, \
                 override it with node::stop(\"node3\", #{{force: true}})",
                r.reason
            )
        );
        let install = HostOp::Install(Version::parse("0.12.1").unwrap());
        let install = Guarded::of_host("node2", &install).unwrap();
        let r = install.verdict(&ms).unwrap();
        assert_eq!(r.rule, Rule::Skew);
        assert!(
            r.message
                .ends_with("override it with node::install(\"node2\", \"0.12.1\", #{force: true})"),
            "{}",
            r.message
        );
        assert_eq!(Guarded::Transfer { to: "node3" }.verdict(&ms), None);
    }
}
