//! Inventories, scripts and `--set` are checked before anything talks to a cluster; the journal is private.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{bare, expect, mkfifo, mode, Cluster};

/// The cluster's inventory with node2's `admin_url` replaced by `url`.
fn with_admin_url(c: &Cluster, url: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    let addr = &c.admin_addrs()[1];
    let edited = text.replace(&format!("\"http://{addr}\""), &format!("\"{url}\""));
    assert!(text.contains(&format!("\"http://{addr}\"")));
    let path = c.dir.path().join("edited.toml");
    std::fs::write(&path, edited).unwrap();
    path
}

/// Runs a mutating snippet against `inventory`; expects exit 2 and no change in the simulator.
fn refused(c: &Cluster, inventory: &Path) -> String {
    let out = bare(c.dir.path())
        .arg("--cluster")
        .arg(inventory)
        .args(["-e", "node::stop(\"node2\")"])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.contains(&format!("inventory `{}`: ", inventory.display())),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["stop", "start"]), vec![], "{stderr}");
    stderr
}

#[test]
fn credentials_in_an_admin_url_are_refused_and_never_printed() {
    let c = Cluster::start(3, "0.10.4");
    let addr = c.admin_addrs()[1].clone();
    let inv = with_admin_url(&c, &format!("http://admin:s3cret@{addr}"));
    let stderr = refused(&c, &inv);
    assert!(
        stderr.contains("node #2 (`node2`): admin_url `http://***@"),
        "{stderr}"
    );
    assert!(stderr.contains("token_env or token_file"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_path_query_or_fragment_in_an_admin_url_is_refused() {
    let c = Cluster::start(3, "0.10.4");
    let addr = c.admin_addrs()[1].clone();
    // A query's and a fragment's values are shown hidden: that is where a URL carries a secret.
    for (suffix, shown, what) in [
        ("/admin", "/admin", "has a path"),
        ("?x=1", "?x=<redacted>", "has a query"),
        ("#top", "#<redacted>", "has a fragment"),
    ] {
        let inv = with_admin_url(&c, &format!("http://{addr}{suffix}"));
        let stderr = refused(&c, &inv);
        assert!(
            stderr.contains(&format!(
                "node #2 (`node2`): admin_url `http://{addr}{shown}` {what}"
            )),
            "{stderr}"
        );
    }
    // The same inventory with the bare address is accepted: the refusals above are about the suffix.
    let inv = with_admin_url(&c, &format!("http://{addr}"));
    let out = bare(c.dir.path())
        .arg("--cluster")
        .arg(&inv)
        .args(["-e", "cluster::health().quorum"])
        .output()
        .unwrap();
    expect(&out, 0);
}

fn with_token_file(c: &Cluster, token: &str) -> std::path::PathBuf {
    std::fs::write(c.dir.path().join("token"), token).unwrap();
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    let path = c.dir.path().join("with_token.toml");
    std::fs::write(&path, format!("[cluster]\ntoken_file = \"token\"\n{text}")).unwrap();
    path
}

#[test]
fn a_token_file_is_one_line() {
    let c = Cluster::start(3, "0.10.4");
    let inv = with_token_file(&c, "abc\ndef\n");
    let stderr = refused(&c, &inv);
    let token = c.dir.path().join("token");
    assert!(
        stderr.contains(&format!(
            "token_file `{}` holds more than one line",
            token.display()
        )),
        "{stderr}"
    );
    // One trailing newline, as `echo` leaves it, is fine.
    let inv = with_token_file(&c, "abc\n");
    let out = bare(c.dir.path())
        .arg("--cluster")
        .arg(&inv)
        .args(["-e", "cluster::health().quorum"])
        .output()
        .unwrap();
    expect(&out, 0);
}

#[test]
fn inventories_must_be_regular_files_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(5 << 20)).unwrap();
    for (path, want) in [
        (
            dir.path().to_path_buf(),
            "is a directory, not a regular file",
        ),
        (fifo, "is a FIFO (named pipe), not a regular file"),
        (
            "/dev/zero".into(),
            "is a character device, not a regular file",
        ),
        (big, "the limit is 4 MiB"),
    ] {
        // A hang (a FIFO waiting for a writer) or an endless read (/dev/zero) fails here.
        let out = bare(dir.path())
            .timeout(Duration::from_secs(60))
            .arg("--cluster")
            .arg(&path)
            .args(["-e", "cluster::health()"])
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!("inventory `{}`: ", path.display())) && stderr.contains(want),
            "{}: {stderr}",
            path.display()
        );
    }
}

#[test]
fn scripts_must_be_regular_files_of_bounded_size_and_check_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dir.rhai")).unwrap();
    mkfifo(&dir.path().join("fifo.rhai"));
    std::fs::write(dir.path().join("big.rhai"), "//".repeat(3 << 20)).unwrap();
    for (name, want) in [
        ("dir.rhai", "is a directory, not a regular file"),
        ("fifo.rhai", "is a FIFO (named pipe), not a regular file"),
        ("big.rhai", "is 6291456 bytes; the limit is 4 MiB"),
    ] {
        for args in [vec!["--sim", name], vec!["check", name]] {
            let out = bare(dir.path())
                .timeout(Duration::from_secs(60))
                .args(&args)
                .output()
                .unwrap();
            let (_, stderr) = expect(&out, 2);
            assert!(
                stderr.contains(&format!("script `{name}`: {want}")),
                "{args:?}: {stderr}"
            );
        }
    }
}

/// What a run changes on a cluster, in the simulator's own record: a lease, or a node touched.
const CHANGES: &[&str] = &[
    "lease", "drain", "undrain", "stop", "start", "stage", "install", "activate", "transfer",
    "snapshot", "pause",
];

#[test]
fn a_misspelt_set_is_refused_before_anything_changes() {
    let c = Cluster::start(3, "0.10.4");
    let out = c.run(&[
        "--yes",
        "--set",
        "soak_sec=600",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.contains("error: --set soak_sec=600: `rolling_upgrade.rhai` takes no option `soak_sec` (did you mean `soak_secs`?)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("its options: analysis_interval_secs, "),
        "{stderr}"
    );
    assert!(stderr.contains(", soak_secs, "), "{stderr}");
    assert_eq!(c.events_of(CHANGES), vec![], "{stderr}");

    // The same run spelt right goes ahead, and the record above would have shown it: a lease, a stage,
    // a drain and a stop (one follower, to keep it short).
    let follower = if c.leader() == "node2" {
        "node3"
    } else {
        "node2"
    };
    let only = format!("only={follower}");
    let out = c.run(&[
        "--yes",
        "--set",
        "soak_secs=0",
        "--set",
        &only,
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, stderr) = expect(&out, 0);
    assert!(!stderr.contains("had no effect"), "{stderr}");
    let changes = c.events_of(CHANGES);
    for kind in ["lease", "stage", "drain", "stop"] {
        assert!(
            changes.iter().any(|(k, _)| k == kind),
            "{kind} in {changes:?}"
        );
    }
}

/// The option names `option("NAME", ...)` in quotes in `text`; panics on one named otherwise, which the
/// stock scripts do not do.
fn quoted_options(file: &str, text: &str) -> Vec<String> {
    text.match_indices("option(")
        .filter(|(i, _)| !text[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let name = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .unwrap_or_else(|| panic!("{file}: an option named otherwise than in quotes"));
            name.0.to_string()
        })
        .collect()
}

/// The modules `import "NAME"` names in `text`.
fn imports(text: &str) -> Vec<String> {
    text.match_indices("import \"")
        .filter_map(|(i, m)| text[i + m.len()..].split_once('"'))
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn every_option_a_stock_script_or_the_stdlib_reads_is_taken_and_a_misspelt_one_is_not() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = bare(root).arg("check").output().unwrap();
    let (listed, _) = expect(&check, 0);
    let dir = tempfile::tempdir().unwrap();
    let mut stock = 0;
    for entry in std::fs::read_dir(root.join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        let script = path.file_name().unwrap().to_str().unwrap().to_string();
        stock += 1;
        // Read independently of the tool: the script's text and the stdlib files it imports, transitively.
        let mut expected = std::collections::BTreeSet::new();
        let mut todo = vec![std::fs::read_to_string(&path).unwrap()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(text) = todo.pop() {
            expected.extend(quoted_options(&script, &text));
            for m in imports(&text) {
                if seen.insert(m.clone()) {
                    let file = root.join("stdlib").join(format!("{m}.rhai"));
                    todo.push(std::fs::read_to_string(&file).unwrap());
                }
            }
        }
        assert!(!expected.is_empty(), "{script}");
        // `check` lists exactly these.
        let line = listed
            .split(&format!("ok: <stock>/{script}\n  options: "))
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap_or_else(|| panic!("{script} in {listed}"));
        let shown: std::collections::BTreeSet<String> =
            line.split(", ").map(str::to_string).collect();
        assert_eq!(shown, expected, "{script}");
        // A run given every one of them passes the check: the script itself stops, at its missing
        // VERSION, before it reads a cluster (there is none).
        let mut run = bare(dir.path());
        for name in &expected {
            run.args(["--set", &format!("{name}=1")]);
        }
        let (_, stderr) = expect(&run.arg(&script).output().unwrap(), 2);
        assert!(!stderr.contains("takes no option"), "{script}: {stderr}");
        assert!(
            stderr.contains(&format!("missing the VERSION argument. Usage: {script} ")),
            "{stderr}"
        );
        // One letter off is refused, naming the real one.
        let real = expected.iter().next_back().unwrap();
        let typo = format!("{}x", &real[..real.len() - 1]);
        let out = bare(dir.path())
            .args(["--set", &format!("{typo}=1"), &script])
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!(
                "--set {typo}=1: `{script}` takes no option `{typo}` (did you mean `{real}`?)"
            )),
            "{stderr}"
        );
    }
    assert_eq!(stock, 4);
    // The stdlib files no stock script imports are read too, so none reads an option otherwise.
    for entry in std::fs::read_dir(root.join("stdlib")).unwrap() {
        let path = entry.unwrap().path();
        quoted_options(
            &path.display().to_string(),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }
}

/// Writes `files` into `dir`.
fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn a_script_takes_the_options_it_declares_and_those_its_modules_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A declared name the script builds: taken; one letter off: refused.
    write(
        d,
        &[(
            "greet.rhai",
            "const OPTIONS = [\"greeting\"];\nfor name in OPTIONS { print(option(name, \"hello\")); }\n",
        )],
    );
    let (stdout, stderr) = expect(
        &bare(d)
            .args(["--set", "greeting=hi", "greet.rhai"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "hi");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (_, stderr) = expect(
        &bare(d)
            .args(["--set", "greting=hi", "greet.rhai"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("--set greting=hi: `greet.rhai` takes no option `greting` (did you mean `greeting`?)\nits options: greeting; nothing was run"),
        "{stderr}"
    );

    // A module beside the script, and a hooks.rhai beside it that the embedded `rolling` imports in
    // its place: their options are the script's too, with the stdlib's.
    write(
        d,
        &[
            ("team.rhai", "fn limit() { option(\"team_limit\", 3) }"),
            ("hooks.rhai", "fn soak() { option(\"team_hook_secs\", 0) }"),
            (
                "main.rhai",
                "import \"team\" as t;\nimport \"rolling\" as r;\nprint(t::limit());\n",
            ),
        ],
    );
    let (stdout, stderr) = expect(
        &bare(d)
            .args([
                "--set",
                "team_limit=5",
                "--set",
                "team_hook_secs=1",
                "--set",
                "soak_secs=2",
            ])
            .arg("main.rhai")
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "5");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (_, stderr) = expect(
        &bare(d)
            .args(["--set", "team_hok_secs=1", "main.rhai"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("(did you mean `team_hook_secs`?)"),
        "{stderr}"
    );

    // A rolling.rhai beside the script wins over the stdlib's, for the check as for the run: the
    // stdlib's `soak_secs` is no option of this script.
    let sub = d.join("own");
    std::fs::create_dir(&sub).unwrap();
    write(
        &sub,
        &[
            ("rolling.rhai", "fn soak() { option(\"team_soak\", 1) }"),
            ("main.rhai", "import \"rolling\" as r;\nprint(r::soak());\n"),
        ],
    );
    let (stdout, _) = expect(
        &bare(d)
            .args(["--set", "team_soak=2", "own/main.rhai"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "2");
    let (_, stderr) = expect(
        &bare(d)
            .args(["--set", "soak_secs=2", "own/main.rhai"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("--set soak_secs=2: `own/main.rhai` takes no option `soak_secs`\nits options: team_soak; nothing was run"),
        "{stderr}"
    );
}

#[test]
fn a_computed_option_name_leaves_the_set_to_the_end_of_the_run_unless_declared() {
    let dir = tempfile::tempdir().unwrap();
    let snippet = "for n in [\"monitor_secs\"] { print(option(n, 300)) }";
    let sets = ["--set", "monitor_secs=5", "--set", "moniter_secs=5"];
    let (stdout, stderr) = expect(
        &bare(dir.path())
            .args(sets)
            .args(["-e", snippet])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "5");
    // Said before the run, and after it for the one it never asked for.
    let before = stderr
        .find("--set moniter_secs, monitor_secs: cannot be checked before the run: the -e snippet asks for options whose names are known only as it runs (<-e>:1: `option` with a computed name)")
        .unwrap_or_else(|| panic!("{stderr}"));
    let after = stderr
        .find("--set moniter_secs=5 had no effect: the run never asked for an option named `moniter_secs` (it asked for `monitor_secs`)")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(before < after, "{stderr}");
    assert!(
        !stderr.contains("--set monitor_secs=5 had no effect"),
        "{stderr}"
    );

    // Declared, the names are known: the misspelt one is refused up front, and the snippet never runs.
    let declared = format!(
        "const OPTIONS = [\"monitor_secs\"]; {}",
        snippet.replace("[\"monitor_secs\"]", "OPTIONS")
    );
    let (stdout, stderr) = expect(
        &bare(dir.path())
            .args(sets)
            .args(["-e", &declared])
            .output()
            .unwrap(),
        2,
    );
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("--set moniter_secs=5: the -e snippet takes no option `moniter_secs` (did you mean `monitor_secs`?)"),
        "{stderr}"
    );
    assert!(!stderr.contains("had no effect"), "{stderr}");
}

#[test]
fn journals_are_private() {
    let c = Cluster::start(3, "0.10.4");
    let snippet = ["-e", "node::stop(\"node2\"); node::start(\"node2\")"];
    // The default journal, under HOME (the test's temp dir); an earlier version left its files open to all.
    let state = c.dir.path().join(".local/state/neumann-script");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let journal = state.join("journal.jsonl");
    std::fs::write(&journal, "").unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(&c.run(&snippet), 0);
    assert!(std::fs::read_to_string(&journal)
        .unwrap()
        .contains("node::stop"));
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&state), 0o700);

    // `--journal` in a new directory: the file and the directories made for it are private.
    let chosen = c.dir.path().join("audit/runs/j.jsonl");
    let mut args = vec!["--journal", chosen.to_str().unwrap()];
    args.extend(snippet);
    expect(&c.run(&args), 0);
    assert!(std::fs::read_to_string(&chosen)
        .unwrap()
        .contains("node::start"));
    assert_eq!(mode(&chosen), 0o600);
    assert_eq!(mode(&c.dir.path().join("audit/runs")), 0o700);
    assert_eq!(mode(&c.dir.path().join("audit")), 0o700);
}

#[test]
fn the_repl_reports_at_its_end_a_set_no_entry_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args(["--set", "a=5", "--set", "b=1", "repl"])
        .write_stdin("option(\"a\", 1)\n")
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start_matches("neumann> ") == "5"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "the REPL cannot know before its entries are typed which options they ask for"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("--set b=1 had no effect: the run never asked for an option named `b` (it asked for `a`)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--set a=5 had no effect"), "{stderr}");
}
