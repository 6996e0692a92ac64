//! The interlocks (docs/SAFETY.md): stop, restart and drain keep a quorum; stop and restart leave the
//! leader alone until it has handed over; installs keep the version skew policy; a leadership transfer
//! goes to a node as new and as caught up as the leader. Here are the rules and their verdict on one
//! survey's members, with no I/O; `Cluster::interlock` reads the members and asks.

use semver::Version;

use crate::model::policy::{parse_version, quorum_after, skew_conflicts};
use crate::model::values::CAUGHT_UP_MS;
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
    /// The node that leads is not stopped or restarted in place: it hands over first.
    Leader,
}

impl Rule {
    pub const ALL: [Rule; 4] = [Rule::Quorum, Rule::Skew, Rule::TransferTarget, Rule::Leader];

    /// The rule's name as messages, the journal, `e.rule` in a script and `#{force: "..."}` say it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Quorum => "quorum",
            Rule::Skew => "version skew",
            Rule::TransferTarget => "transfer target",
            Rule::Leader => "leader",
        }
    }

    pub fn named(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// What `#{force: ...}` lets a call go past: no interlock, every one (`true`), or only the named ones
/// (`"leader"`, `["quorum", "leader"]`), so an override meant for one rule does not silence the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Force {
    #[default]
    No,
    All,
    Only(Vec<Rule>),
}

impl Force {
    /// Whether this call goes past `rule`.
    pub fn skips(&self, rule: Rule) -> bool {
        match self {
            Force::No => false,
            Force::All => true,
            Force::Only(rules) => rules.contains(&rule),
        }
    }

    /// Any override at all.
    pub fn any(&self) -> bool {
        *self != Force::No
    }

    /// As the call wrote it: `true`, `"leader"`, `["quorum", "leader"]`.
    pub fn written(&self) -> String {
        match self {
            Force::No => "false".into(),
            Force::All => "true".into(),
            Force::Only(rules) if rules.len() == 1 => format!("\"{}\"", rules[0].name()),
            Force::Only(rules) => format!(
                "[{}]",
                rules
                    .iter()
                    .map(|r| format!("\"{}\"", r.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// For the journal's `args.force`: `true`, or the rule names.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Force::No => false.into(),
            Force::All => true.into(),
            Force::Only(rules) if rules.len() == 1 => rules[0].name().into(),
            Force::Only(rules) => rules.iter().map(|r| r.name()).collect::<Vec<_>>().into(),
        }
    }
}

/// The interlocks' verdict on one call: the refusal that stands, if any, and the refusals the call's
/// `force` goes past (what it overrides, said loudly and journaled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judgement {
    pub refused: Option<Refusal>,
    pub overridden: Vec<Refusal>,
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

    /// How a script overrides this interlock, for the refusal's last sentence. The leader rule names
    /// itself, so the override does not also silence the quorum.
    fn override_hint(&self, rule: Rule) -> String {
        let force = match rule {
            Rule::Leader => "\"leader\"",
            _ => "true",
        };
        match self {
            Guarded::TakeDown { id, op } => format!("node::{op}(\"{id}\", #{{force: {force}}})"),
            Guarded::Version { id, op, version } => {
                format!("node::{op}(\"{id}\", \"{version}\", #{{force: {force}}})")
            }
            Guarded::Transfer { to } => {
                format!("raft::transfer_leadership(\"{to}\", #{{force: {force}}})")
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

    /// Every rule the operation would break on `members` (one survey), in the order they are asked: the
    /// quorum before the leader, so a stop that breaks both is named for the worse.
    pub fn refusals(&self, members: &[Member]) -> Vec<Refusal> {
        let broken = match self {
            Guarded::TakeDown { id, op } => {
                let mut b: Vec<(Rule, String)> = take_down(members, id, op).into_iter().collect();
                if *op != "drain" {
                    b.extend(in_place(members, id, op));
                }
                b
            }
            Guarded::Version { id, version, .. } => {
                version_skew(members, id, version).into_iter().collect()
            }
            Guarded::Transfer { to } => transfer_target(members, to).into_iter().collect(),
        };
        let subject = self.subject();
        broken
            .into_iter()
            .map(|(rule, reason)| Refusal {
                rule,
                message: format!(
                    "{subject} refused by the {} interlock: {reason}. Nothing was changed. In an emergency, override it with {}",
                    rule.name(),
                    self.override_hint(rule)
                ),
                subject: subject.clone(),
                reason,
            })
            .collect()
    }

    /// The first refusal on `members` that `force` does not go past, and the ones it does.
    pub fn judge(&self, members: &[Member], force: &Force) -> Judgement {
        let (overridden, standing): (Vec<Refusal>, Vec<Refusal>) = self
            .refusals(members)
            .into_iter()
            .partition(|r| force.skips(r.rule));
        Judgement {
            refused: standing.into_iter().next(),
            overridden,
        }
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

/// The leader interlock: the node that leads now (by its own report in this survey) is not stopped or
/// restarted in place. Its clients' writes in flight would fail, and who leads next would be left to its
/// shutdown: a hand-over of its own choosing, or an election when none is possible in time (docs/ADMIN_API.md).
/// Handing over first costs neither. The refusal names a follower to hand over to.
fn in_place(members: &[Member], id: &str, op: &str) -> Option<(Rule, String)> {
    let target = members.iter().find(|m| m.id == id)?;
    if target.role != "leader" || target.state == "down" {
        return None;
    }
    let to = members
        .iter()
        .filter(|m| m.id != id && m.state == "up" && m.healthy)
        .filter(|m| transfer_target(members, &m.id).is_none())
        .min_by_key(|m| m.replication_lag_ms);
    let hand_over = match to {
        Some(m) => format!(
            "hand leadership over first with raft::transfer_leadership(\"{}\"), then {op} it",
            m.id
        ),
        None => "no follower can take over now (none is up, caught up and on a version as new), so hand over once one can".to_string(),
    };
    Some((
        Rule::Leader,
        format!(
            "{id} leads the cluster: {op} in place would fail the writes in flight to it and leave the next leader to its shutdown (an election if it cannot hand over in time); {hand_over}"
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
        let r = stop.judge(&ms, &Force::No).refused.unwrap();
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
        let r = install.judge(&ms, &Force::No).refused.unwrap();
        assert_eq!(r.rule, Rule::Skew);
        assert!(
            r.message
                .ends_with("override it with node::install(\"node2\", \"0.12.1\", #{force: true})"),
            "{}",
            r.message
        );
        assert_eq!(Guarded::Transfer { to: "node3" }.refusals(&ms), vec![]);
    }

    #[test]
    fn the_leader_is_not_stopped_or_restarted_in_place_unless_that_rule_is_forced() {
        let ms = [
            member("node1", "leader", "up", 0, "0.11.0"),
            member("node2", "follower", "up", 0, "0.10.4"),
            member("node3", "follower", "up", 0, "0.11.0"),
        ];
        for op in ["stop", "restart"] {
            let g = Guarded::TakeDown { id: "node1", op };
            let r = g.judge(&ms, &Force::No).refused.unwrap();
            assert_eq!(r.rule, Rule::Leader);
            // node2 is older than the leader: node3 is the one to hand over to.
            assert_eq!(
                r.message,
                format!(
                    "node1: {op} refused by the leader interlock: node1 leads the cluster: {op} in place would \
                     fail the writes in flight to it and leave the next leader to its shutdown (an election if \
                     it cannot hand over in time); hand leadership over first with \
                     raft::transfer_leadership(\"node3\"), then {op} it. Nothing was changed. In an emergency, \
                     override it with node::{op}(\"node1\", #{{force: \"leader\"}})"
                )
            );
            let forced = g.judge(&ms, &Force::Only(vec![Rule::Leader]));
            assert_eq!(forced.refused, None);
            assert_eq!(forced.overridden.len(), 1);
            assert_eq!(g.judge(&ms, &Force::All).refused, None);
            // Forcing another rule does not go past this one.
            assert_eq!(
                g.judge(&ms, &Force::Only(vec![Rule::Quorum]))
                    .refused
                    .map(|r| r.rule),
                Some(Rule::Leader)
            );
        }
        // A drain of the leader is the runbook's own step before its hand-over; followers are not held.
        assert_eq!(
            Guarded::TakeDown {
                id: "node1",
                op: "drain"
            }
            .refusals(&ms),
            vec![]
        );
        assert_eq!(
            Guarded::TakeDown {
                id: "node3",
                op: "stop"
            }
            .refusals(&ms),
            vec![]
        );
        // With no follower to take over (one older, one behind; five members, so the quorum holds), the
        // refusal says so.
        let alone = [
            member("node1", "leader", "up", 0, "0.11.0"),
            member("node2", "follower", "up", 900, "0.11.0"),
            member("node3", "follower", "up", 0, "0.10.4"),
            member("node4", "follower", "up", 0, "0.10.4"),
            member("node5", "follower", "up", 0, "0.10.4"),
        ];
        let r = Guarded::TakeDown {
            id: "node1",
            op: "stop",
        }
        .refusals(&alone);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].reason.contains("no follower can take over now"),
            "{}",
            r[0].reason
        );
    }

    #[test]
    fn forcing_the_leader_rule_still_leaves_the_quorum_to_refuse() {
        let ms = [
            member("node1", "leader", "up", 0, "0.10.4"),
            member("node2", "follower", "down", 0, "0.10.4"),
            member("node3", "follower", "up", 0, "0.10.4"),
        ];
        let g = Guarded::TakeDown {
            id: "node1",
            op: "stop",
        };
        let rules: Vec<Rule> = g.refusals(&ms).iter().map(|r| r.rule).collect();
        assert_eq!(rules, vec![Rule::Quorum, Rule::Leader]);
        let j = g.judge(&ms, &Force::Only(vec![Rule::Leader]));
        assert_eq!(j.refused.map(|r| r.rule), Some(Rule::Quorum));
        let all = g.judge(&ms, &Force::All);
        assert_eq!(all.refused, None);
        assert_eq!(all.overridden.len(), 2);
        assert_eq!(
            Force::Only(vec![Rule::Quorum, Rule::Leader]).written(),
            "[\"quorum\", \"leader\"]"
        );
        assert_eq!(
            Force::Only(vec![Rule::Leader]).to_json(),
            serde_json::json!("leader")
        );
    }
}
