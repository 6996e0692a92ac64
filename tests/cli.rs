//! The command line as a user meets it: bad input, inventories, `check`, `functions`, `-e`, `sim`.

use std::time::Duration;

use crate::support::{bare, bare_command, expect, poll_until, signal, text, Cluster};

#[test]
fn junk_version_is_a_usage_error() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai", "X.Y.Z"]), 2);
    assert!(
        stderr.contains("`X.Y.Z` is not a version: expected MAJOR.MINOR.PATCH"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Usage: rolling_upgrade.rhai VERSION"),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain", "stop"]), vec![]);
}

#[test]
fn missing_version_is_a_usage_error() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai"]), 2);
    assert!(stderr.contains("missing the VERSION argument"), "{stderr}");
}

#[test]
fn unknown_node_id_is_named_with_the_ones_there_are() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["-e", "node::drain(\"node9\")"]), 2);
    assert!(
        stderr.contains("unknown node `node9`: the inventory has node1, node2, node3"),
        "{stderr}"
    );
}

#[test]
fn missing_and_malformed_inventories() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["--cluster", "nope.toml", "-e", "cluster::health()"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("inventory `nope.toml`: no such file"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "[[nodes]]\nid = \"node1\"\nadmin_ur = \"http://x\"\n",
    )
    .unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["--cluster", "bad.toml", "-e", "1"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("inventory `bad.toml`: line 3: unknown field `admin_ur`"),
        "{stderr}"
    );

    // Without any inventory, cluster calls say how to name one; pure snippets still run.
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["-e", "cluster::health()"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("no cluster to talk to: pass --cluster FILE"),
        "{stderr}"
    );
    let (stdout, _) = expect(
        &bare(dir.path())
            .args(["-e", "version::compare(\"0.10.4\", \"0.11.0\")"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "-1");
}

#[test]
fn the_inventory_comes_from_the_environment_or_the_default_file() {
    let c = Cluster::start(3, "0.10.4");
    let (stdout, _) = expect(
        &bare(c.dir.path())
            .env("NEUMANN_CLUSTER", &c.inventory)
            .args(["-e", "cluster::leader()"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "node1");
    std::fs::copy(&c.inventory, c.dir.path().join("neumann-cluster.toml")).unwrap();
    let (stdout, _) = expect(
        &bare(c.dir.path())
            .args(["-e", "cluster::members().len()"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(stdout.trim(), "3");
}

#[test]
fn a_script_with_a_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.rhai"), "let x = 1;\nlet y = ;\n").unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["check", "broken.rhai"])
            .output()
            .unwrap(),
        1,
    );
    assert!(stderr.contains("--> broken.rhai:2:9"), "{stderr}");
    assert!(stderr.contains("2 | let y = ;"), "{stderr}");
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["--sim", "broken.rhai"])
            .output()
            .unwrap(),
        1,
    );
    assert!(stderr.contains("broken.rhai:2:9"), "{stderr}");
}

#[test]
fn check_finds_unknown_functions_and_wrong_arity() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typos.rhai"),
        "let h = cluster::helth();\nnode::drain(\"node1\", 5, 6);\nmy_fn();\nfn my_fn() { infoo(\"x\") }\n",
    )
    .unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["check", "typos.rhai"])
            .output()
            .unwrap(),
        1,
    );
    assert!(
        stderr.contains("unknown function `cluster::helth` (did you mean `cluster::health`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("--> typos.rhai:1:"), "{stderr}");
    assert!(
        stderr.contains("`node::drain` takes 1 or 2 argument(s), not 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown function `infoo` (did you mean `info`?)"),
        "{stderr}"
    );
    assert!(!stderr.contains("`my_fn`"), "{stderr}");
}

#[test]
fn check_reports_every_problem_of_a_file_each_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("several.rhai"),
        "let h = cluster::helth();\nprint(undefined_var);\nnodee::stop(\"node1\");\nnode::drain(\"node1\", 5, 6);\nprint(undefined_var);\nfn f() { infoo(\"x\") }\nprint(other);\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("again.rhai"), "nodee::stop(\"node1\");\n").unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["check", "several.rhai", "again.rhai"])
            .output()
            .unwrap(),
        1,
    );
    // Each problem, in the order of the file's lines, with its file:line:col.
    let want = [
        ("unknown function `cluster::helth`", "several.rhai:1:18"),
        ("Undefined variable: undefined_var", "several.rhai:2:7"),
        (
            "Undefined module: nodee (did you mean `node`?)",
            "several.rhai:3:1",
        ),
        (
            "`node::drain` takes 1 or 2 argument(s), not 3",
            "several.rhai:4:7",
        ),
        ("unknown function `infoo`", "several.rhai:6:10"),
        ("Undefined variable: other", "several.rhai:7:7"),
    ];
    let mut from = 0;
    for (message, at) in want {
        let found = stderr[from..]
            .find(&format!("error: {message}"))
            .unwrap_or_else(|| panic!("{message} after byte {from}:\n{stderr}"));
        from += found;
        assert!(
            stderr[from..].contains(&format!("--> {at}\n")),
            "{at}:\n{stderr}"
        );
    }
    assert!(stderr.contains("several.rhai: 6 errors"), "{stderr}");
    // A variable is reported at its first use only.
    assert_eq!(stderr.matches("undefined_var").count(), 2, "{stderr}");
    // The next file is checked on its own: the module the first one lacked is unknown there too.
    assert!(stderr.contains("--> again.rhai:1:1"), "{stderr}");
    assert!(
        stderr.contains("check failed for 2 of 2 scripts: several.rhai, again.rhai"),
        "{stderr}"
    );
}

#[test]
fn check_stops_at_a_syntax_error_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rhai"),
        "print(before);\nlet y = ;\nprint(after);\n",
    )
    .unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["check", "broken.rhai"])
            .output()
            .unwrap(),
        1,
    );
    assert!(
        stderr.contains("error: Undefined variable: before\n  --> broken.rhai:1:7"),
        "{stderr}"
    );
    assert!(stderr.contains("--> broken.rhai:2:9"), "{stderr}");
    assert!(
        stderr.contains(
            "note: Rhai cannot read past a syntax error: the lines after it were not checked"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("variable: after"), "{stderr}");
    assert!(stderr.contains("broken.rhai: 2 errors"), "{stderr}");
}

#[test]
fn check_with_no_arguments_checks_the_stock_scripts_and_stdlib() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = expect(&bare(dir.path()).arg("check").output().unwrap(), 0);
    for name in [
        "<stock>/rolling_upgrade.rhai",
        "<stdlib>/upgrade.rhai",
        "<stdlib>/preflight.rhai",
        "<stdlib>/cli.rhai",
    ] {
        assert!(stdout.contains(&format!("ok: {name}")), "{stdout}");
    }
}

#[test]
fn functions_lists_every_api_function_with_a_doc() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = expect(&bare(dir.path()).arg("functions").output().unwrap(), 0);
    let api = [
        "cluster::health()",
        "cluster::members()",
        "cluster::versions()",
        "cluster::leader()",
        "cluster::followers()",
        "cluster::pause()",
        "cluster::resume()",
        "cluster::wait_healthy(timeout",
        "cluster::test_transaction()",
        "node::status(id",
        "node::drain(id",
        "node::undrain(id",
        "node::wait_drained(id",
        "node::stop(id",
        "node::start(id",
        "node::restart(id",
        "node::install(id",
        "node::exec(id",
        "node::wait_rejoined(id",
        "node::wait_caught_up(id",
        "raft::status()",
        "raft::leader()",
        "raft::transfer_leadership(to",
        "metrics::scrape(id",
        "backup::status()",
        "backup::snapshot()",
        "version::parse(s",
        "version::compare(a",
        "version::upgrade_path(from",
        "version::skew_ok(versions",
        "option(name",
        "sleep(secs",
        "now()",
        "info(msg",
        "warn(msg",
        "step(name",
        "confirm(question",
        "fail(msg",
        "wall_now()",
        "metrics::compare_past(id: String, since",
        "metrics::has_prometheus()",
        "journal::enabled()",
        "journal::event(kind",
        "journal::last_event(kind",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    for f in api {
        let at = lines
            .iter()
            .position(|l| l.starts_with(f))
            .unwrap_or_else(|| panic!("{f} missing from\n{stdout}"));
        assert!(
            lines
                .get(at + 1)
                .is_some_and(|d| d.starts_with("    ") && d.trim().len() > 10),
            "{f} has no doc line"
        );
    }
}

#[test]
fn eval_prints_json_with_format_json() {
    let c = Cluster::start(3, "0.10.4");
    let (stdout, _) = expect(
        &c.run(&["--format", "json", "-e", "cluster::versions()"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"node1": "0.10.4", "node2": "0.10.4", "node3": "0.10.4"})
    );
    let (stdout, _) = expect(&c.run(&["--format", "json", "-e", "cluster::health()"]), 0);
    let h: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["members"].as_array().unwrap().len(), 3);
    assert_eq!(h["members"][0]["id"], "node1");
    let (stdout, _) = expect(&c.run(&["-e", "cluster::health()"]), 0);
    assert!(
        stdout.starts_with("cluster healthy: 3/3 members healthy (quorum 2), leader node1"),
        "{stdout}"
    );
}

#[test]
fn a_runtime_error_names_the_node_the_operation_and_the_line() {
    let c = Cluster::start(3, "0.10.4");
    // Stopped on its host, outside the tool: no run of the tool left it down for the next to start.
    c.host("node2", "stop");
    std::fs::write(c.dir.path().join("t.rhai"), "// transfer to a node that is down\n// (stopped by hand)\nraft::transfer_leadership(\"node2\");\n").unwrap();
    let (_, stderr) = expect(&c.run(&["t.rhai"]), 1);
    assert!(
        stderr.contains(
            "error: node2: transfer leadership from node1 refused: HTTP 409: node2 is down"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--> t.rhai:3:"), "{stderr}");
    // Errors are catchable with try/catch like any runtime error.
    let (stdout, _) = expect(
        &c.run(&[
            "-e",
            "let m = \"\"; try { node::drain(\"node2\") } catch (e) { m = e } m",
        ]),
        0,
    );
    // Not seen answering in this process, node2 is asked who it is before the drain would be sent.
    assert!(
        stdout.contains("node2: drain failed: GET http://127.0.0.1:")
            && stdout.contains("/health: connection refused"),
        "{stdout}"
    );
}

#[test]
fn options_after_the_script_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["rolling_upgrade.rhai", "0.11.0", "--yes"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("`--yes` comes after the script name"),
        "{stderr}"
    );
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["--sim", "nosuch.rhai"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("no script `nosuch.rhai`: no such file, and no stock script of that name"),
        "{stderr}"
    );
}

#[test]
fn sim_runs_in_the_foreground_for_another_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("c.toml");
    let mut sim = bare_command(dir.path())
        .args([
            "sim",
            "--nodes",
            "5",
            "--version",
            "0.10.4",
            "--speed",
            "20",
            "--inventory",
        ])
        .arg(&inv)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    poll_until(
        "sim to write its inventory",
        Duration::from_secs(30),
        || inv.exists(),
    );
    let cluster = |args: &[&str]| {
        bare(dir.path())
            .arg("--cluster")
            .arg(&inv)
            .args(args)
            .output()
            .unwrap()
    };
    expect(&cluster(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let (stdout, _) = expect(
        &cluster(&["--format", "json", "-e", "cluster::versions()"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 5);
    assert!(
        v.as_object().unwrap().values().all(|x| x == "0.11.0"),
        "{v}"
    );

    // Ctrl-C stops it and removes the inventory it wrote.
    signal(&sim, "INT");
    let status = sim.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(sim.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(!inv.exists());
    assert!(err.contains("inventory written to"), "{err}");
}

#[test]
fn sim_refuses_to_overwrite_a_real_inventory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prod.toml"),
        "[[nodes]]\nid = \"a\"\nhost = \"h\"\n",
    )
    .unwrap();
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["sim", "--inventory", "prod.toml"])
            .output()
            .unwrap(),
        2,
    );
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
    assert_eq!(
        text(&std::fs::read(dir.path().join("prod.toml")).unwrap()),
        "[[nodes]]\nid = \"a\"\nhost = \"h\"\n"
    );
}

#[test]
fn help_teaches_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = expect(&bare(dir.path()).arg("--help").output().unwrap(), 0);
    assert!(
        stdout.contains("neumann-script --sim rolling_upgrade.rhai 0.11.0"),
        "{stdout}"
    );
    assert!(stdout.contains("Exit codes:"), "{stdout}");
}

#[test]
fn health_asks_every_node_and_says_why_one_is_missing() {
    let c = Cluster::start(3, "0.10.4");
    expect(
        &c.run(&[
            "-e",
            "node::drain(\"node2\"); node::wait_drained(\"node2\", 10); node::stop(\"node2\")",
        ]),
        0,
    );
    let (stdout, _) = expect(&c.run(&["-e", "cluster::health()"]), 0);
    assert!(
        stdout.starts_with("cluster degraded: 2/3 members healthy (quorum 2), leader node1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("problem: node2: down (not answering: connection refused)"),
        "{stdout}"
    );
    let (stdout, _) = expect(&c.run(&["-e", "node::status(\"node2\").state"]), 0);
    assert_eq!(stdout.trim(), "down");

    // An inventory that forgot a member: the cluster is not healthy from where the tool stands.
    let inv = std::fs::read_to_string(&c.inventory).unwrap();
    let cut = inv.find("[[nodes]]\nid = \"node3\"").unwrap();
    let partial = c.dir.path().join("partial.toml");
    std::fs::write(&partial, &inv[..cut]).unwrap();
    let out = crate::support::bare(c.dir.path())
        .arg("--cluster")
        .arg(&partial)
        .args(["-e", "cluster::health().problems"])
        .output()
        .unwrap();
    let (stdout, _) = expect(&out, 0);
    assert!(
        stdout.contains("node3: a cluster member missing from the inventory"),
        "{stdout}"
    );
}

#[test]
fn definitions_describe_the_api_for_editors() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = expect(
        &bare(dir.path())
            .args(["definitions", "defs"])
            .output()
            .unwrap(),
        0,
    );
    assert!(
        stdout.contains("wrote the script API's definitions to defs"),
        "{stdout}"
    );
    let mut all = String::new();
    for f in std::fs::read_dir(dir.path().join("defs")).unwrap() {
        let path = f.unwrap().path();
        assert!(
            path.to_string_lossy().ends_with(".d.rhai"),
            "{}",
            path.display()
        );
        all.push_str(&std::fs::read_to_string(path).unwrap());
    }
    for want in [
        "fn health()",
        "/// The cluster's health",
        "fn transfer_leadership(",
        "fn safe_stop(",
    ] {
        assert!(all.contains(want), "definitions lack {want:?}");
    }
}

/// What bash completes for `words`, the cursor on the last one, with the registration that
/// `completions bash` prints sourced, as a shell would after `source <(neumann-script completions bash)`:
/// the completion function is called as bash calls it at Tab, and COMPREPLY read back. Runs in `dir`.
fn bash_completes(dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let (registration, _) = expect(
        &bare(dir).args(["completions", "bash"]).output().unwrap(),
        0,
    );
    let quoted: Vec<String> = words
        .iter()
        .map(|w| shlex::try_quote(w).unwrap().into_owned())
        .collect();
    let script = format!(
        "{registration}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n\
         _clap_complete_neumann_script neumann-script \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        quoted.join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("NEUMANN_CLUSTER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommand_options_stock_scripts_modules_and_node_ids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let has = |got: &[String], want: &[&str]| {
        for w in want {
            assert!(got.iter().any(|g| g == w), "{w} missing from {got:?}");
        }
    };
    // A subcommand's flags, which the generated script's mislabelled cases never offered.
    has(
        &bash_completes(d, &["neumann-script", "pause", "--"]),
        &["--reason", "--cluster", "--format"],
    );
    has(
        &bash_completes(d, &["neumann-script", "status", "--"]),
        &["--watch", "--output", "--cluster"],
    );
    has(
        &bash_completes(d, &["neumann-script", "audit", ""]),
        &["list", "show", "--all", "--journal"],
    );
    has(
        &bash_completes(d, &["neumann-script", "status", "-o", ""]),
        &["text", "wide", "json"],
    );
    // Stock scripts by name, and script files here.
    std::fs::write(d.join("my_check.rhai"), "1").unwrap();
    assert_eq!(
        bash_completes(d, &["neumann-script", "roll"]),
        ["rollback.rhai", "rolling_upgrade.rhai"]
    );
    has(
        &bash_completes(d, &["neumann-script", "--sim", "my"]),
        &["my_check.rhai"],
    );
    // `functions MODULE`: the modules.
    assert_eq!(
        bash_completes(d, &["neumann-script", "functions", "n"]),
        ["node"]
    );
    // A stock script's NODE arguments: the node ids of the inventory the command line names, read
    // from the file (these nodes need not answer), else of `--sim`'s cluster.
    std::fs::write(
        d.join("prod.toml"),
        "[[nodes]]\nid = \"alpha\"\nhost = \"a\"\n[[nodes]]\nid = \"beta\"\nhost = \"b\"\n",
    )
    .unwrap();
    assert_eq!(
        bash_completes(
            d,
            &[
                "neumann-script",
                "--cluster",
                "prod.toml",
                "rollback.rhai",
                "0.10.4",
                ""
            ]
        ),
        ["alpha", "beta"]
    );
    assert_eq!(
        bash_completes(
            d,
            &[
                "neumann-script",
                "--sim=4@0.10.4",
                "canary_upgrade.rhai",
                "0.11.0",
                "node"
            ]
        ),
        ["node1", "node2", "node3", "node4"]
    );
    // A VERSION argument completes to nothing, and so does a script of one's own: options there would
    // reach the script, and the shell falls back to file names.
    assert_eq!(
        bash_completes(d, &["neumann-script", "--sim", "rollback.rhai", ""]),
        Vec::<String>::new()
    );
    assert_eq!(
        bash_completes(d, &["neumann-script", "my_check.rhai", ""]),
        Vec::<String>::new()
    );

    let (_, stderr) = expect(&bare(d).args(["completions", "tcsh"]).output().unwrap(), 2);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    // Every other shell clap knows gets its registration.
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (stdout, _) = expect(&bare(d).args(["completions", shell]).output().unwrap(), 0);
        assert!(
            stdout.contains("NEUMANN_SCRIPT_COMPLETE"),
            "{shell}: {stdout}"
        );
    }
}

#[test]
fn functions_of_one_module_only() {
    let dir = tempfile::tempdir().unwrap();
    for module in ["cluster", "cluster::"] {
        let (stdout, _) = expect(
            &bare(dir.path())
                .args(["functions", module])
                .output()
                .unwrap(),
            0,
        );
        let signatures: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.is_empty())
            .collect();
        assert!(
            signatures.contains(&"cluster::health() -> ClusterHealth"),
            "{stdout}"
        );
        assert!(
            signatures.iter().all(|s| s.starts_with("cluster::")),
            "{module}: {stdout}"
        );
    }
    // The same check over the whole list finds other modules' functions.
    let (all, _) = expect(&bare(dir.path()).arg("functions").output().unwrap(), 0);
    assert!(all.lines().any(|l| l.starts_with("node::")));
    let (_, stderr) = expect(
        &bare(dir.path())
            .args(["functions", "nodes"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        stderr.contains("functions nodes: no such module; the modules are cluster, node, raft"),
        "{stderr}"
    );
}

#[test]
fn when_no_node_answers_every_node_says_why() {
    let c = Cluster::start(3, "0.10.4");
    for n in ["node1", "node2", "node3"] {
        c.host(n, "stop");
    }
    let (_, stderr) = expect(&c.run(&["-e", "cluster::health()"]), 1);
    // The real time spent is stated (milliseconds on an idle machine; whatever it took on a busy one).
    let line = stderr
        .lines()
        .find(|l| l.contains("cluster: no node answered in "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let spent = line
        .split("no node answered in ")
        .nth(1)
        .and_then(|rest| rest.split(": node1: health failed").next())
        .unwrap_or_default();
    assert!(
        spent.ends_with(" ms") || spent.ends_with(" s"),
        "a duration before node1's reason: {line}"
    );
    assert!(line.contains(": node1: health failed"), "{line}");
    for n in ["node2", "node3"] {
        assert!(
            stderr.contains(&format!("; {n}: health failed: GET http://127.0.0.1:")),
            "{stderr}"
        );
    }
}

#[test]
fn version_names_the_commit_and_the_rhai_version_it_was_built_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path()).arg("--version").output().unwrap();
    let (stdout, _) = expect(&out, 0);
    let line = stdout.trim();
    let manifest = env!("CARGO_MANIFEST_DIR");
    // The Rhai version is the one Cargo.lock pins, which is what this checkout builds.
    let lock = std::fs::read_to_string(format!("{manifest}/Cargo.lock")).unwrap();
    let rhai = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"rhai\"\n"))
        .and_then(|p| p.split("version = \"").nth(1))
        .and_then(|v| v.split('"').next())
        .unwrap();
    let (head, commit) = line
        .strip_prefix(&format!(
            "neumann-script {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .and_then(|rest| rest.strip_suffix(&format!(", rhai {rhai})")))
        .map(|commit| (line, commit))
        .unwrap_or_else(|| panic!("{line}"));
    // From a checkout, the commit is its HEAD (and `-dirty` when the sources differ from it).
    let git = std::process::Command::new("git")
        .args(["-C", manifest, "rev-parse", "--short=7", "HEAD"])
        .output();
    match git {
        Ok(g) if g.status.success() => {
            let hash = String::from_utf8_lossy(&g.stdout).trim().to_string();
            assert!(
                commit == hash || commit == format!("{hash}-dirty"),
                "{head}: HEAD is {hash}"
            );
        }
        _ => assert!(!commit.is_empty(), "{head}"),
    }
}
