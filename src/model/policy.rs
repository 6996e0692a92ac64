//! The runbook's version rules: which upgrades may roll, and how far apart running versions may be.
//!
//! From the runbook's compatibility matrix and skew policy: a rolling upgrade moves at most one minor
//! version within the same major (0.9 -> 0.10, 0.10 -> 0.11); anything further (0.8 -> 0.10, 0.x -> 1.0)
//! needs blue-green; at most one minor version of skew while nodes run mixed versions.

use semver::Version;

/// Parses a version the way every entry point does, with a message an operator can act on.
/// A leading `v` is accepted because operators type `v0.11.0` as often as `0.11.0`.
pub fn parse_version(s: &str) -> Result<Version, String> {
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

    #[test]
    fn junk_versions_get_a_clear_message() {
        let e = parse_version("X.Y.Z").unwrap_err();
        assert!(
            e.starts_with("`X.Y.Z` is not a version: expected MAJOR.MINOR.PATCH"),
            "{e}"
        );
        assert_eq!(v("v0.11.0"), v("0.11.0"));
        assert!(parse_version("0.11").is_err());
    }
}
