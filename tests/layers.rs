//! The layers of docs/ARCHITECTURE.md hold: every `crate::` path in src/ points to a module further down
//! the order, so no module imports one that (directly or through others) imports it back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// Every `.rs` file below `dir`.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let (mut files, mut stack) = (Vec::new(), vec![dir.to_path_buf()]);
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Every (from, to) pair of top-level modules that a file's `crate::` paths name, `crate::{` included so a
/// grouped import cannot hide an edge.
fn edges(src: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for path in rs_files(src) {
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

/// The edges between the files of `src/<folder>`, each file or subfolder one node (`mod` for the folder's
/// own mod.rs). A path names a module by climbing from the file's own (`super::`, `self::`; a `mod x {`
/// block at the left margin, the tests, is one module deeper) or from the top (`crate::<folder>::`), and
/// in the folder's mod.rs by a child's name (`pub use wait::X`); a name that is not a child is an item
/// of mod.rs. Comment lines do not count.
fn edges_within(src: &Path, folder: &str) -> BTreeSet<(String, String)> {
    let dir = src.join(folder);
    let top: Vec<String> = folder.split('/').map(String::from).collect();
    let children: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "mod")
        .collect();
    let node = |path: &[String]| match path.first() {
        Some(n) if children.contains(n) => n.clone(),
        _ => "mod".to_string(),
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    for path in rs_files(&dir) {
        let mut module: Vec<String> = path
            .strip_prefix(&dir)
            .unwrap()
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let from = node(&module);
        // The text, and for each character whether it sits in a `mod x {` block at the left margin
        // (the tests): one more module level to climb from.
        let (mut chars, mut inner, mut inline) = (Vec::new(), Vec::new(), false);
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            inline = (inline || line.starts_with("mod ") && line.ends_with('{')) && line != "}";
            if !line.trim_start().starts_with("//") {
                chars.extend(line.chars().chain(['\n']));
                inner.extend(std::iter::repeat_n(inline, line.chars().count() + 1));
            }
        }
        let mut i = 0;
        while i < chars.len() {
            if !ident(chars[i]) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':')) {
                i += 1;
                continue;
            }
            let mut here = module.clone();
            if inner[i] {
                here.push("tests".into());
            }
            // One path: identifiers joined by `::`, perhaps ending in a `{...}` group.
            let mut segs = Vec::new();
            let mut group = None;
            loop {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                segs.push(chars[start..i].iter().collect::<String>());
                if !chars[i..].starts_with(&[':', ':']) {
                    break;
                }
                i += 2;
                if chars.get(i) == Some(&'{') {
                    // The group's names: its commas outside any inner group.
                    let (mut depth, mut names) = (0, vec![String::new()]);
                    while i + 1 < chars.len() && (depth > 0 || chars[i + 1] != '}') {
                        i += 1;
                        match chars[i] {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            ',' if depth == 0 => names.push(String::new()),
                            c => names.last_mut().unwrap().push(c),
                        }
                    }
                    group = Some(names);
                    break;
                }
                if !chars.get(i).is_some_and(|&c| ident(c)) {
                    break;
                }
            }
            let supers = segs.iter().take_while(|s| *s == "super").count();
            let (base, rest) = if supers > 0 {
                if supers > here.len() {
                    continue;
                }
                (here[..here.len() - supers].to_vec(), &segs[supers..])
            } else if segs[0] == "self" {
                (here.clone(), &segs[1..])
            } else if segs[0] == "crate" && segs[1..].starts_with(&top) {
                (Vec::new(), &segs[1 + top.len()..])
            } else if here.is_empty()
                && (segs.len() > 1 || group.is_some())
                && children.contains(&segs[0])
            {
                (Vec::new(), &segs[..])
            } else {
                continue;
            };
            let named: Vec<Vec<String>> = match &group {
                Some(g) => g
                    .iter()
                    .map(|part| {
                        let first = part.trim().split("::").next().unwrap_or("");
                        let mut p = [&base[..], rest].concat();
                        if !first.is_empty() && first != "self" {
                            p.push(first.to_string());
                        }
                        p
                    })
                    .collect(),
                None => vec![[&base[..], rest].concat()],
            };
            for p in named {
                let to = node(&p);
                if to != from {
                    out.insert((from.clone(), to));
                }
            }
        }
    }
    out
}

/// The edges that lie on a loop, as "from -> to".
fn loops(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(
                    edges
                        .iter()
                        .filter(|(f, _)| *f == n)
                        .map(|(_, t)| t.clone()),
                );
            }
        }
        false
    };
    edges
        .iter()
        .filter(|(from, to)| reaches(to, from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect()
}

/// No file of `src/<folder>` imports one that, directly or through others, imports it back.
fn no_loops_within(folder: &str) {
    let edges = edges_within(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), folder);
    assert!(
        edges.len() > 3,
        "too few edges read in src/{folder}: {edges:?}"
    );
    let bad = loops(&edges);
    assert!(bad.is_empty(), "import loops within src/{folder}/: {bad:?}");
}

#[test]
fn no_import_loop_within_the_cluster_layer() {
    no_loops_within("cluster");
}

#[test]
fn the_check_names_a_loop_within_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("mod.rs", "mod a;\nmod b;\nmod c;\npub use a::A;\npub use b::{B, Nested::{N, O}};\npub struct M;\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
        ("a.rs", "use super::{\n    b::B,\n    M,\n};\n\n#[cfg(test)]\nmod tests {\n    use super::super::c::Z;\n}\n"),
        ("b.rs", "// use super::M;\nuse crate::x::c::Y;\npub struct B;\n"),
        ("c.rs", "pub struct Y;\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
    ];
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("x").join(name), text).unwrap();
    }
    let edges = edges_within(dir.path(), "x");
    let pairs: Vec<String> = edges.iter().map(|(f, t)| format!("{f} -> {t}")).collect();
    assert_eq!(
        pairs,
        ["a -> b", "a -> c", "a -> mod", "b -> c", "mod -> a", "mod -> b"]
    );
    assert_eq!(loops(&edges), ["a -> mod", "mod -> a"]);
}

/// The `.rs` files under `src` that no `mod NAME;` reaches from `lib.rs` or `main.rs`: files the compiler
/// never reads, so their code is neither built nor tested, whatever it says. `#[path = "..."]` is followed.
fn unreached(src: &Path) -> Vec<String> {
    let mut reached = BTreeSet::new();
    let mut todo: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.is_file())
        .collect();
    while let Some(file) = todo.pop() {
        if !reached.insert(file.clone()) {
            continue;
        }
        let here = file.parent().unwrap().to_path_buf();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        // `mod x;` in lib.rs, main.rs or a mod.rs is beside it; in a.rs it is a/x.rs.
        let dir = if ["lib", "main", "mod"].contains(&stem.as_str()) {
            here.clone()
        } else {
            here.join(&stem)
        };
        let mut path_attr: Option<String> = None;
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let line = line.trim();
            if let Some(p) = line
                .strip_prefix("#[path = \"")
                .and_then(|r| r.strip_suffix("\"]"))
            {
                path_attr = Some(p.to_string());
                continue;
            }
            if line.starts_with("#[") || line.starts_with("//") {
                continue;
            }
            let decl = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let name = decl
                .strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'))
                .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if let Some(name) = name {
                let target = match path_attr.take() {
                    // Relative to the declaring file's own directory.
                    Some(p) => here.join(p),
                    None if dir.join(format!("{name}.rs")).is_file() => {
                        dir.join(format!("{name}.rs"))
                    }
                    None => dir.join(name).join("mod.rs"),
                };
                todo.push(target);
            } else {
                path_attr = None;
            }
        }
    }
    let mut out: Vec<String> = rs_files(src)
        .into_iter()
        .filter(|p| !reached.contains(p))
        .map(|p| p.strip_prefix(src).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn every_source_file_is_reached_by_a_mod_declaration() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let orphans = unreached(&src);
    assert!(
        orphans.is_empty(),
        "files under src/ that no `mod` declares (the compiler never reads them): {orphans:?}"
    );
}

#[test]
fn the_check_names_a_file_no_mod_declares() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod a;\nmod b;\n// mod commented;\n");
    write("main.rs", "fn main() {}\n");
    write(
        "a.rs",
        "pub(crate) mod c;\n#[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;\n",
    );
    write("a/c.rs", "");
    write("a_tests.rs", "");
    write("b/mod.rs", "mod d {\n    fn inline() {}\n}\n");
    write("b/types.rs", "");
    write("commented.rs", "");
    write("a/tests.rs", "");
    assert_eq!(
        unreached(dir.path()),
        vec!["a/tests.rs", "b/types.rs", "commented.rs"]
    );
}
