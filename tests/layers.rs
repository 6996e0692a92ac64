//! The layers of docs/ARCHITECTURE.md hold: every `crate::` path in src/ points to a module further down
//! the order, so no module imports one that (directly or through others) imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom, then the leaves any layer may use, then the simulator, which imports nothing of the product.
const ORDER: &[&str] = &[
    "run",
    "cli",
    "audit",
    "steer",
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

/// A folder of src/ as a module tree: each module's path (`["sim", "world", "raft"]`) and the file that holds
/// it (relative to src/). Inline modules (`mod tests { ... }`) map to the file they are written in.
type Modules = BTreeMap<Vec<String>, String>;

/// The folder's modules: those its `mod.rs` (or `<folder>.rs`) declares, and theirs in turn.
fn folder_modules(src: &Path, folder: &str) -> Modules {
    let root = if src.join(folder).join("mod.rs").exists() {
        format!("{folder}/mod.rs")
    } else {
        format!("{folder}.rs")
    };
    modules_from(src, &root, folder.split('/').map(String::from).collect())
}

/// Follows the `mod` declarations from `root` (relative to `src`, holding module `top`) as rustc does,
/// `#[path]` included: the files it reaches are the code the compiler reads; no other file is.
fn modules_from(src: &Path, root: &str, top: Vec<String>) -> Modules {
    let mut modules = Modules::new();
    let mut queue = vec![(top, root.to_string())];
    while let Some((path, file)) = queue.pop() {
        let text =
            std::fs::read_to_string(src.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let dir = Path::new(&file).parent().unwrap().to_path_buf();
        // Children of `lib.rs`, `main.rs` and `a/mod.rs` live beside them; children of `a/b.rs` in `a/b/`.
        let stem = Path::new(&file).file_stem().unwrap();
        let child_dir = if ["lib", "main", "mod"].iter().any(|s| stem == *s) {
            dir.clone()
        } else {
            dir.join(stem)
        };
        modules.insert(path.clone(), file.clone());
        let (mut inline, mut declared) = (Vec::new(), Vec::new());
        collect_mods(&ast.items, &path, &mut inline, &mut declared);
        for FileMod { module, path_attr } in declared {
            let name = module.last().unwrap();
            let child = match path_attr {
                Some(p) => dir.join(p),
                None if src.join(child_dir.join(format!("{name}.rs"))).exists() => {
                    child_dir.join(format!("{name}.rs"))
                }
                None => child_dir.join(name).join("mod.rs"),
            };
            queue.push((module, child.to_string_lossy().into_owned()));
        }
        for module in inline {
            modules.insert(module, file.clone());
        }
    }
    modules
}

/// A `mod name;` item: its module path, and its `#[path = "..."]` if it has one.
struct FileMod {
    module: Vec<String>,
    path_attr: Option<String>,
}

/// Walks `items` for `mod` items: file modules go to `declared`, inline ones to `inline`, whose own `mod`
/// items are walked in turn.
fn collect_mods(
    items: &[syn::Item],
    at: &[String],
    inline: &mut Vec<Vec<String>>,
    declared: &mut Vec<FileMod>,
) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        let module: Vec<String> = at.iter().cloned().chain([m.ident.to_string()]).collect();
        match &m.content {
            Some((_, items)) => {
                inline.push(module.clone());
                collect_mods(items, &module, inline, declared);
            }
            None => {
                let path_attr = m.attrs.iter().find_map(|a| match &a.meta {
                    syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }) => Some(s.value()),
                        _ => None,
                    },
                    _ => None,
                });
                declared.push(FileMod { module, path_attr });
            }
        }
    }
}

/// Every path a file names, with the module it is named in: `use` trees (flattened), paths in types and
/// expressions, and `a::b` runs of tokens inside macro calls (`assert!`, `format!`), which syn leaves unparsed.
struct PathsNamed {
    at: Vec<String>,
    found: Vec<(Vec<String>, Vec<String>)>,
}

impl PathsNamed {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.named(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.named(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.found.push((self.at.clone(), prefix.clone())),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// `use a::b::{self}` names `a::b`; `use a::b::c` names `a::b::c`.
    fn named(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut path = prefix.to_vec();
        if ident != "self" {
            path.push(ident.to_string());
        }
        self.found.push((self.at.clone(), path));
    }

    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        use proc_macro2::TokenTree;
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for token in tokens {
            match token {
                TokenTree::Ident(i) => {
                    if colons != 2 {
                        self.flush(&mut run);
                    }
                    run.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !run.is_empty() && colons < 2 => {
                    colons += 1;
                }
                TokenTree::Group(g) => {
                    self.flush(&mut run);
                    self.tokens(g.stream());
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => self.flush(&mut run),
            }
        }
        self.flush(&mut run);
    }

    fn flush(&mut self, run: &mut Vec<String>) {
        if run.len() > 1 {
            self.found.push((self.at.clone(), std::mem::take(run)));
        }
        run.clear();
    }
}

impl<'ast> syn::visit::Visit<'ast> for PathsNamed {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.at.push(m.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.at.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.found.push((self.at.clone(), segments));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The module a path named in module `at` points into, if it is a module of the tree: `crate::`, `super::`
/// and `self::` paths, and paths that start with a child module's name.
fn resolve(modules: &Modules, at: &[String], path: &[String]) -> Option<String> {
    let mut abs = at.to_vec();
    let mut rest = path;
    match path.first()?.as_str() {
        "crate" => {
            abs.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                abs.pop()?;
                rest = &rest[1..];
            }
        }
        first => {
            let mut child = at.to_vec();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
        }
    }
    abs.extend(rest.iter().cloned());
    // The longest prefix that is a module: `super::world::host::INSTALL_SECS` is world/host.rs.
    (1..=abs.len())
        .rev()
        .find_map(|n| modules.get(&abs[..n]))
        .cloned()
}

/// The edges between the files of `src/<folder>` (a folder below it too: `sim/world`), each file one node,
/// named by its path in the folder without `.rs` (`mod`, `raft`, `world/mod`). Rust is read as rustc reads it
/// (syn): the folder's files are those its `mod` declarations reach; a path names a module from the file's
/// own (`super::`, `self::`, or a child's name; inside `mod tests { ... }` one level deeper) or from the top
/// (`crate::<folder>::`), and its edge goes to the file of the longest prefix that is a module, so
/// `use super::world::host::INSTALL_SECS` is an edge to `world/host`. A `mod` declaration is not an edge:
/// a folder's mod.rs declares its children without importing them.
fn edges_within(src: &Path, folder: &str) -> BTreeSet<(String, String)> {
    let modules = folder_modules(src, folder);
    let name = |file: &str| {
        file.strip_prefix(&format!("{folder}/"))
            .unwrap_or(file)
            .trim_end_matches(".rs")
            .to_string()
    };
    let files: BTreeSet<&String> = modules.values().collect();
    let mut out = BTreeSet::new();
    for file in files {
        let at = modules
            .iter()
            .filter(|(_, f)| *f == file)
            .map(|(m, _)| m.clone())
            .min_by_key(Vec::len)
            .unwrap();
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut named = PathsNamed {
            at,
            found: Vec::new(),
        };
        syn::visit::Visit::visit_file(&mut named, &ast);
        for (at, path) in named.found {
            if let Some(to) = resolve(&modules, &at, &path) {
                if to != *file {
                    out.insert((name(file), name(&to)));
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

/// The import loops within each folder directly under `src` (its subfolders included), but `skip`, as
/// "folder: from -> to", and how many edges were read in all.
fn loops_within_folders(src: &Path, skip: &[&str]) -> (Vec<String>, usize) {
    let mut folders: Vec<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| !skip.contains(&f.as_str()))
        .collect();
    folders.sort();
    let (mut bad, mut read) = (Vec::new(), 0);
    for folder in folders {
        let edges = edges_within(src, &folder);
        read += edges.len();
        bad.extend(loops(&edges).into_iter().map(|l| format!("{folder}: {l}")));
    }
    (bad, read)
}

#[test]
fn no_import_loop_within_any_folder() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // The simulator has its own test below.
    let (bad, read) = loops_within_folders(&src, &["sim"]);
    // A folder may hold files that import nothing of each other (journal/); all of them together may not.
    assert!(
        read > 30,
        "too few edges read within the folders of src/: {read}"
    );
    assert!(
        bad.is_empty(),
        "import loops within a folder of src/: {bad:#?}"
    );
}

#[test]
fn the_check_walks_every_folder() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| write_under(dir.path(), rel, text);
    // A folder whose root is `j.rs` beside it, with a loop; one with `mod.rs` and none; one skipped.
    write("j.rs", "pub mod leaf;\nuse self::leaf::L;\npub struct J;\n");
    write("j/leaf.rs", "use super::J;\npub struct L;\n");
    write("m/mod.rs", "mod a;\nuse a::A;\n");
    write("m/a.rs", "pub struct A;\n");
    write("s/mod.rs", "mod a;\nuse a::A;\n");
    write("s/a.rs", "use super::S;\npub struct A;\n");
    let (bad, read) = loops_within_folders(dir.path(), &["s"]);
    assert_eq!(bad, ["j: j -> leaf", "j: leaf -> j"]);
    assert_eq!(read, 3);
}

#[test]
fn no_import_loop_within_the_simulator() {
    no_loops_within("sim");
}

/// Writes `text` to `rel` below `root`, making the folders it needs: the synthetic trees the checks are shown
/// firing on.
fn write_under(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
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
    for (name, text) in files {
        write_under(dir.path(), &format!("x/{name}"), text);
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
    let reached: BTreeSet<PathBuf> = ["lib.rs", "main.rs"]
        .into_iter()
        .filter(|root| src.join(root).is_file())
        .flat_map(|root| modules_from(src, root, Vec::new()).into_values())
        .map(|file| src.join(file))
        .collect();
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
    let write = |rel: &str, text: &str| write_under(dir.path(), rel, text);
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

#[test]
fn the_loop_check_names_each_edge_on_a_loop() {
    let edges: BTreeSet<(String, String)> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
    assert_eq!(loops(&edges), ["a -> b", "b -> c", "c -> a"]);
    let without_c_to_a: BTreeSet<(String, String)> = edges
        .into_iter()
        .filter(|(f, t)| (f.as_str(), t.as_str()) != ("c", "a"))
        .collect();
    assert!(loops(&without_c_to_a).is_empty());
}

#[test]
fn the_check_reads_paths_as_rustc_resolves_them() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| write_under(dir.path(), rel, text);
    write(
        "f/mod.rs",
        "mod a;\nmod b;\npub mod w;\n#[path = \"odd.rs\"]\nmod c;\nuse self::a::A;\nfn f() {\n    b::go();\n}\n",
    );
    // A test module's `super` is its own file: no edge. A string is not a path.
    write(
        "f/a.rs",
        "pub struct A;\nconst S: &str = \"super::b\";\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    );
    // Paths inside a macro call count; a nested folder's files are nodes of their own.
    write(
        "f/b.rs",
        "pub fn go() {\n    assert!(crate::f::w::leaf::ONE == 1);\n}\n",
    );
    write("f/w/mod.rs", "pub mod leaf;\n");
    write("f/w/leaf.rs", "pub const ONE: u8 = 1;\n");
    write("f/odd.rs", "use super::super::f::{a::A as B, w};\n");
    // Not declared by any `mod`: not part of the folder.
    write("f/orphan.rs", "use super::a::A;\n");
    let edges = edges_within(dir.path(), "f");
    let pairs: Vec<String> = edges.iter().map(|(f, t)| format!("{f} -> {t}")).collect();
    assert_eq!(
        pairs,
        [
            "b -> w/leaf",
            "mod -> a",
            "mod -> b",
            "odd -> a",
            "odd -> w/mod"
        ]
    );
    assert!(loops(&edges).is_empty());

    // A child that imports what its parent defines, while the parent imports the child: a loop.
    write("f/a.rs", "pub struct A;\nuse super::Shared;\n");
    write(
        "f/mod.rs",
        "mod a;\nmod b;\npub mod w;\n#[path = \"odd.rs\"]\nmod c;\npub struct Shared;\nuse self::a::A;\n",
    );
    assert_eq!(
        loops(&edges_within(dir.path(), "f")),
        ["a -> mod", "mod -> a"]
    );
}

/// The most lines a source file may hold: past it a file is split along its seams (docs/ARCHITECTURE.md).
const MAX_LINES: usize = 1000;

/// Source files under `src` longer than `MAX_LINES`, as "path: N lines".
fn too_long(src: &Path) -> Vec<String> {
    rs_files(src)
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            (n > MAX_LINES)
                .then(|| format!("{}: {n} lines", f.strip_prefix(src).unwrap().display()))
        })
        .collect()
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long = too_long(&src);
    assert!(long.is_empty(), "split these along their seams: {long:?}");
}

#[test]
fn the_check_names_a_file_over_a_thousand_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_under(dir.path(), "ok.rs", &"//\n".repeat(MAX_LINES));
    write_under(dir.path(), "a/long.rs", &"//\n".repeat(MAX_LINES + 1));
    assert_eq!(too_long(dir.path()), vec!["a/long.rs: 1001 lines"]);
}
