//! The runbook's version rules: which upgrades may roll, and how far apart running versions may be.
//!
//! From the runbook's compatibility matrix and skew policy: a rolling upgrade moves at most one minor
//! version within the same major (0.9 -> 0.10, 0.10 -> 0.11); anything further (0.8 -> 0.10, 0.x -> 1.0)
//! needs blue-green; at most one minor version of skew while nodes run mixed versions.

use semver::Version;

use super::values::{quorum, Member, CAUGHT_UP_MS, UNKNOWN_VERSION};

/// Parses a version the way every entry point does, with a message an operator can act on.
/// A leading `v` is accepted because operators type `v0.11.0` as often as `0.11.0`.
pub fn parse_version(s: &str) -> Result<Version, String> {
    if s == UNKNOWN_VERSION {
        return Err(format!(
            "`{s}` stands for the version of a member that is not answering and that no answering \
             member lists: nobody can say which version it runs. Leave down members out \
             (`m.state != \"down\"`), or bring the node up"
        ));
    }
    let t = s.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    Version::parse(t).map_err(|e| {
        format!("`{s}` is not a version: expected MAJOR.MINOR.PATCH such as 0.11.0 ({e})")
    })
}

/// Minor versions between `a` and `b`, or `None` when the majors differ.
pub fn minor_distance(a: &Version, b: &Version) -> Option<u64> {
    (a.major == b.major).then(|| a.minor.abs_diff(b.minor))
}

/// How to get from one version to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradePath {
    pub rolling: bool,
    /// "rolling" | "blue-green" | "none".
    pub strategy: &'static str,
    pub reason: String,
}

/// The runbook's compatibility matrix as a rule.
pub fn upgrade_path(from: &Version, to: &Version) -> UpgradePath {
    let (rolling, strategy, reason) = if to <= from {
        (
            false,
            "none",
            format!(
                "{to} is not newer than {from}: nothing to upgrade (use rollback.rhai to go back)"
            ),
        )
    } else {
        match minor_distance(from, to) {
            None => (
                false,
                "blue-green",
                format!("{from} -> {to} changes the major version: the runbook requires a blue-green upgrade"),
            ),
            Some(d) if d <= 1 => (
                true,
                "rolling",
                if d == 0 {
                    format!("{from} -> {to} is a patch upgrade: rolling upgrade supported")
                } else {
                    format!("{from} -> {to} is one minor version: rolling upgrade supported")
                },
            ),
            Some(d) => (
                false,
                "blue-green",
                format!(
                    "{from} -> {to} spans {d} minor versions, more than the one the version skew policy allows: \
                     the runbook requires a blue-green upgrade (or step through each minor version in turn)"
                ),
            ),
        }
    };
    UpgradePath {
        rolling,
        strategy,
        reason,
    }
}

/// True when every pair of versions is within one minor version of each other (same major).
pub fn skew_ok(versions: &[Version]) -> bool {
    let (Some(lo), Some(hi)) = (versions.iter().min(), versions.iter().max()) else {
        return true;
    };
    versions
        .iter()
        .all(|v| minor_distance(lo, v).is_some_and(|d| d <= 1))
        && minor_distance(lo, hi).is_some_and(|d| d <= 1)
}

/// True when `m` counts towards a quorum: up (not down, draining or drained), healthy, joined and caught
/// up. A member still catching up does not count: it could not take over a leader's log in time.
pub fn counts_for_quorum(m: &Member) -> bool {
    m.state == "up" && m.healthy && m.replication_lag_ms <= CAUGHT_UP_MS
}

/// Why a member does not count towards a quorum, in a few words; `None` when it counts.
pub fn not_counted_because(m: &Member) -> Option<String> {
    if m.state != "up" {
        Some(m.state.clone())
    } else if !m.healthy {
        Some("unhealthy".into())
    } else if m.replication_lag_ms > CAUGHT_UP_MS {
        Some(format!("catching up, lag {} ms", m.replication_lag_ms))
    } else {
        None
    }
}

/// The quorum left if `id` is taken out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumAfter {
    /// Members other than `id` that count towards a quorum.
    pub counted: Vec<String>,
    /// Members other than `id` that do not, with why.
    pub not_counted: Vec<(String, String)>,
    pub members: usize,
    pub quorum: usize,
}

impl QuorumAfter {
    pub fn holds(&self) -> bool {
        self.counted.len() >= self.quorum
    }
}

/// What taking `id` out would leave: the members that would still count towards a quorum of all `members`.
pub fn quorum_after(members: &[Member], id: &str) -> QuorumAfter {
    let mut counted = Vec::new();
    let mut not_counted = Vec::new();
    for m in members.iter().filter(|m| m.id != id) {
        match not_counted_because(m) {
            None => counted.push(m.id.clone()),
            Some(why) => not_counted.push((m.id.clone(), why)),
        }
    }
    QuorumAfter {
        counted,
        not_counted,
        members: members.len(),
        quorum: quorum(members.len()) as usize,
    }
}

/// The running versions (members not down, other than `id`, with a version that parses) that are more
/// than one minor version from `version`: what makes installing `version` on `id` break the skew policy.
pub fn skew_conflicts(members: &[Member], id: &str, version: &Version) -> Vec<(String, Version)> {
    let running: Vec<(String, Version)> = members
        .iter()
        .filter(|m| m.id != id && m.state != "down")
        .filter_map(|m| Some((m.id.clone(), parse_version(&m.version).ok()?)))
        .collect();
    let mut all: Vec<Version> = running.iter().map(|(_, v)| v.clone()).collect();
    all.push(version.clone());
    if skew_ok(&all) {
        return Vec::new();
    }
    running
        .into_iter()
        .filter(|(_, v)| !skew_ok(&[v.clone(), version.clone()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_version(s).unwrap()
    }

    #[test]
    fn every_row_of_the_runbooks_compatibility_matrix() {
        // | From | To | Compatible |
        let rows = [
            ("0.9.3", "0.10.0", true, "rolling"),
            ("0.10.4", "0.11.0", true, "rolling"),
            ("0.8.2", "0.10.0", false, "blue-green"),
            ("0.11.2", "1.0.0", false, "blue-green"),
            ("0.9.0", "1.0.1", false, "blue-green"),
        ];
        for (from, to, rolling, strategy) in rows {
            let p = upgrade_path(&v(from), &v(to));
            assert_eq!(
                (p.rolling, p.strategy),
                (rolling, strategy),
                "{from} -> {to}: {}",
                p.reason
            );
        }
    }

    #[test]
    fn patches_roll_and_downgrades_are_not_upgrades() {
        assert!(upgrade_path(&v("0.10.4"), &v("0.10.6")).rolling);
        let same = upgrade_path(&v("0.11.0"), &v("0.11.0"));
        assert_eq!((same.rolling, same.strategy), (false, "none"));
        assert_eq!(upgrade_path(&v("0.11.0"), &v("0.10.4")).strategy, "none");
        assert!(upgrade_path(&v("1.2.0"), &v("1.3.0")).rolling);
        assert_eq!(
            upgrade_path(&v("1.2.0"), &v("1.4.0")).strategy,
            "blue-green"
        );
    }

    #[test]
    fn reasons_say_why() {
        let p = upgrade_path(&v("0.8.1"), &v("0.10.0"));
        assert!(p.reason.contains("spans 2 minor versions"), "{}", p.reason);
        assert!(upgrade_path(&v("0.11.0"), &v("1.0.0"))
            .reason
            .contains("major version"));
    }

    #[test]
    fn skew_policy_allows_one_minor() {
        assert!(skew_ok(&[v("0.10.4"), v("0.11.0"), v("0.10.1")]));
        assert!(!skew_ok(&[v("0.10.4"), v("0.12.0")]));
        assert!(!skew_ok(&[v("0.11.0"), v("1.0.0")]));
        assert!(skew_ok(&[]));
    }

    fn member(id: &str, state: &str, healthy: bool, lag: i64, version: &str) -> Member {
        Member {
            id: id.into(),
            address: String::new(),
            role: "follower".into(),
            state: state.into(),
            healthy,
            version: version.into(),
            commit_index: 0,
            applied_index: 0,
            replication_lag_ms: lag,
        }
    }

    #[test]
    fn only_up_healthy_caught_up_members_count_for_quorum() {
        let ms = [
            member("node1", "up", true, 0, "0.10.4"),
            member("node2", "up", true, 2800, "0.10.4"),
            member("node3", "drained", true, 0, "0.10.4"),
            member("node4", "down", false, 0, "0.10.4"),
            member("node5", "up", true, 0, "0.10.4"),
        ];
        let q = quorum_after(&ms, "node5");
        assert_eq!(q.counted, vec!["node1"]);
        assert_eq!((q.members, q.quorum, q.holds()), (5, 3, false));
        assert_eq!(
            q.not_counted[0],
            ("node2".into(), "catching up, lag 2800 ms".into())
        );
        assert!(!quorum_after(&ms[..3], "node3").holds());
        assert!(quorum_after(&[ms[0].clone(), ms[4].clone(), ms[2].clone()], "node3").holds());
    }

    #[test]
    fn skew_conflicts_name_the_running_members_too_far_away() {
        let ms = [
            member("node1", "up", true, 0, "0.10.4"),
            member("node2", "up", true, 0, "0.11.0"),
            member("node3", "down", false, 0, "0.9.0"),
        ];
        assert!(skew_conflicts(&ms, "node2", &v("0.11.2")).is_empty());
        let c = skew_conflicts(&ms, "node2", &v("0.12.0"));
        assert_eq!(c, vec![("node1".to_string(), v("0.10.4"))]);
        // The node being installed is not compared with itself, nor a member that is down.
        assert!(skew_conflicts(&ms, "node1", &v("0.12.0")).is_empty());
    }

    #[test]
    fn junk_versions_get_a_clear_message() {
        let e = parse_version("X.Y.Z").unwrap_err();
        assert!(
            e.starts_with("`X.Y.Z` is not a version: expected MAJOR.MINOR.PATCH"),
            "{e}"
        );
        assert_eq!(v("v0.11.0"), v("0.11.0"));
        assert!(parse_version("0.11").is_err());
        let e = parse_version(UNKNOWN_VERSION).unwrap_err();
        assert!(
            e.starts_with("`unknown` stands for the version of a member that is not answering")
                && !e.contains("is not a version"),
            "{e}"
        );
    }
}
