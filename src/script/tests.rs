//! Tests that run the whole engine on real files: the options a script takes, as `ScriptEngine::options`
//! reads them through the engine's own resolver.

use std::path::Path;

use super::ctx::Ctx;
use super::engine::ScriptEngine;
use super::options::ScriptOptions;
use crate::error::Error;

fn scan_in(dir: &Path, files: &[(&str, &str)], main: &str) -> Result<ScriptOptions, Error> {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = ScriptEngine::new(Ctx::bare(tokio.handle().clone()));
    let path = dir.join(main);
    engine.options(
        &path.display().to_string(),
        &std::fs::read_to_string(&path).unwrap(),
    )
}

fn names(o: &ScriptOptions) -> Vec<&str> {
    o.names.iter().map(String::as_str).collect()
}

#[test]
fn names_in_quotes_are_found_in_functions_and_imports_made_inside_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = scan_in(
        dir.path(),
        &[
            ("lib.rhai", r#"fn f() { option("from_lib", 1) }"#),
            (
                "main.rhai",
                r#"const K = "folded"; fn g() { import "lib" as l; l::f() + option("in_fn", 2) } option(K, 0)"#,
            ),
        ],
        "main.rhai",
    )
    .unwrap();
    assert_eq!(names(&o), ["folded", "from_lib", "in_fn"]);
    assert!(o.blind.is_empty(), "{:?}", o.blind);
}

#[test]
fn a_computed_name_is_blind_unless_its_file_or_the_script_declares() {
    let dir = tempfile::tempdir().unwrap();
    let helper = ("helper.rhai", "fn opt(n, d) { option(n, d) }");
    // The module's computed name, no declaration anywhere: the scan says where it could not see.
    let o = scan_in(
        dir.path(),
        &[
            helper,
            ("main.rhai", r#"import "helper" as h; h::opt("x", 1)"#),
        ],
        "main.rhai",
    )
    .unwrap();
    assert_eq!(o.blind.len(), 1, "{:?}", o.blind);
    assert!(o.blind[0].ends_with("helper.rhai:1: `option` with a computed name"));
    // The script's declaration speaks for its modules.
    let o = scan_in(
        dir.path(),
        &[(
            "main.rhai",
            r#"const OPTIONS = ["x"]; import "helper" as h; h::opt(OPTIONS[0], 1)"#,
        )],
        "main.rhai",
    )
    .unwrap();
    assert_eq!((names(&o), o.blind.len()), (vec!["x"], 0));
    // A module's declaration speaks only for itself: the script's own computed name stays blind.
    let o = scan_in(
        dir.path(),
        &[
            (
                "decl.rhai",
                r#"const OPTIONS = ["y"]; fn y(n) { option(n, 1) }"#,
            ),
            (
                "main.rhai",
                r#"import "decl" as d; let n = "z"; option(n, 1)"#,
            ),
        ],
        "main.rhai",
    )
    .unwrap();
    assert_eq!(names(&o), ["y"]);
    assert_eq!(o.blind.len(), 1, "{:?}", o.blind);
    assert!(o.blind[0].contains("main.rhai:1"), "{:?}", o.blind);
}

#[test]
fn an_import_the_scan_cannot_follow_is_blind() {
    let dir = tempfile::tempdir().unwrap();
    let o = scan_in(
        dir.path(),
        &[(
            "main.rhai",
            "let m = \"team\";\nimport m as t;\nimport \"nowhere\" as n;",
        )],
        "main.rhai",
    )
    .unwrap();
    assert_eq!(o.blind.len(), 2, "{:?}", o.blind);
    assert!(o.blind[0].ends_with("main.rhai:2: `import` of a computed path"));
    assert!(o.blind[1].ends_with("main.rhai:3: no module `nowhere`"));
}

#[test]
fn a_declaration_that_is_not_names_in_quotes_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        r#"const OPTIONS = ["a", 1];"#,
        "const OPTIONS = \"a\";",
        r#"const OPTIONS = [""];"#,
    ] {
        let e = scan_in(
            dir.path(),
            &[("main.rhai", &format!("\n{bad}"))],
            "main.rhai",
        )
        .unwrap_err();
        let Error::Script(m) = e else { panic!("{e:?}") };
        assert!(m.contains("`const OPTIONS` must list"), "{m}");
        assert!(m.contains("main.rhai:2:1"), "{m}");
    }
    // `let OPTIONS` is the script's own variable, not a declaration.
    let o = scan_in(
        dir.path(),
        &[("main.rhai", "let OPTIONS = 1;")],
        "main.rhai",
    )
    .unwrap();
    assert!(o.names.is_empty());
}
