//! The layers of docs/ARCHITECTURE.md hold: every `crate::` path in src/ points to a module further down
//! the order, so no module imports one that (directly or through others) imports it back.

use std::collections::BTreeSet;
use std::path::Path;

/// Top to bottom, then the leaves any layer may use, then the simulator, which imports nothing of the product.
const ORDER: &[&str] = &[
    "run",
    "cli",
    "audit",
    "control",
    "repl",
    "session",
    "report",
    "rehearse",
    "script",
    "lease",
    "cluster",
    "transport",
    "inventory",
    "model",
    "notify",
    "output",
    "journal",
    "interrupt",
    "error",
    "files",
    "secret",
    "sim",
];

/// Every (from, to) pair of top-level modules that a file's `crate::` paths name, `crate::{` included so a
/// grouped import cannot hide an edge.
fn edges(src: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let from = top.trim_end_matches(".rs").to_string();
            if from == "main" || from == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let to: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '{')
                    .collect();
                if to != from {
                    out.insert((from.clone(), to));
                }
            }
        }
    }
    out
}

fn upward(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    edges
        .iter()
        .filter(|(from, to)| match (rank(from), rank(to)) {
            (Some(f), Some(t)) => f > t,
            _ => true,
        })
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect()
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = edges(&src);
    assert!(all.len() > 20, "too few edges read: {all:?}");
    let bad = upward(&all);
    assert!(
        bad.is_empty(),
        "imports that do not point down the layers: {bad:?}"
    );
}

#[test]
fn the_check_names_an_upward_import() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cluster")).unwrap();
    std::fs::write(
        dir.path().join("cluster/mod.rs"),
        "use crate::script::ctx::Ctx;",
    )
    .unwrap();
    std::fs::write(dir.path().join("script.rs"), "use crate::cluster::Cluster;").unwrap();
    std::fs::write(dir.path().join("model.rs"), "use crate::{sim, output};").unwrap();
    let bad = upward(&edges(dir.path()));
    assert_eq!(bad, vec!["cluster -> script", "model -> {sim"]);
}
