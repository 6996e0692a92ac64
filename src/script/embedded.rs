//! The stock scripts and stdlib compiled into the binary, so a `cargo install` has them.
//! Copies on disk win over these (see `resolver`), so teams can edit without recompiling.

/// Stock runbooks, by file name.
pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "blue_green.rhai",
        include_str!("../../scripts/blue_green.rhai"),
    ),
    (
        "canary_upgrade.rhai",
        include_str!("../../scripts/canary_upgrade.rhai"),
    ),
    ("rollback.rhai", include_str!("../../scripts/rollback.rhai")),
    (
        "rolling_upgrade.rhai",
        include_str!("../../scripts/rolling_upgrade.rhai"),
    ),
];

/// Stdlib modules, by import name.
pub const STDLIB: &[(&str, &str)] = &[
    ("analysis", include_str!("../../stdlib/analysis.rhai")),
    ("cli", include_str!("../../stdlib/cli.rhai")),
    ("criteria", include_str!("../../stdlib/criteria.rhai")),
    ("hooks", include_str!("../../stdlib/hooks.rhai")),
    ("preflight", include_str!("../../stdlib/preflight.rhai")),
    ("rollback", include_str!("../../stdlib/rollback.rhai")),
    ("rolling", include_str!("../../stdlib/rolling.rhai")),
    ("upgrade", include_str!("../../stdlib/upgrade.rhai")),
];

pub fn script(name: &str) -> Option<&'static str> {
    SCRIPTS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn stdlib(name: &str) -> Option<&'static str> {
    STDLIB.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
