//! The API and the command line without surprises: numbers as int or float, JSON that parses whatever a
//! snippet prints, editor definitions with real types, contradictory options refused before anything starts.

use crate::support::{bare, expect, text, Cluster};

#[test]
fn numeric_parameters_take_an_int_or_a_float() {
    let c = Cluster::start(3, "0.10.4");
    for lag in ["100.0", "100", "99.5"] {
        let code = format!("node::wait_caught_up(\"node2\", {lag}, 5).id");
        let (stdout, _) = expect(&c.run(&["-e", &code]), 0);
        assert_eq!(stdout.trim(), "node2", "max_lag_ms = {lag}");
    }
    let (_, stderr) = expect(
        &c.run(&["-e", "node::wait_caught_up(\"node2\", \"lots\", 5)"]),
        1,
    );
    assert!(
        stderr.contains("max_lag_ms must be a number, not string"),
        "{stderr}"
    );
}

#[test]
fn json_output_parses_whatever_the_snippet_prints() {
    let c = Cluster::start(3, "0.10.4");
    let out = c.run(&[
        "--format",
        "json",
        "-e",
        "print(\"checking versions\"); debug(\"x\"); cluster::versions()",
    ]);
    let (stdout, stderr) = expect(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert_eq!(v["node1"], "0.10.4", "{v}");
    assert!(stderr.contains("checking versions"), "{stderr}");
}

#[test]
fn editor_definitions_declare_real_types() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    let out = bare(dir.path())
        .args(["definitions", defs.to_str().unwrap()])
        .output()
        .unwrap();
    expect(&out, 0);
    let mut declared = 0;
    for entry in std::fs::read_dir(&defs).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read_to_string(&path).unwrap();
        for line in body.lines().filter(|l| l.starts_with("fn ")) {
            declared += 1;
            // A declaration without `->` returns nothing; one with it must name a type.
            let Some((_, ret)) = line.rsplit_once("->") else {
                continue;
            };
            let ret = ret.trim().trim_end_matches(';').trim();
            let ok = ret == "()"
                || ret == "?"
                || ret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_<>, ".contains(c))
                    && !ret.is_empty()
                    && !ret.contains("EvalAltResult")
                    && ret.matches('<').count() == ret.matches('>').count();
            assert!(ok, "{}: bad return type `{ret}` in: {line}", path.display());
        }
    }
    assert!(declared > 50, "only {declared} functions declared");
}

#[test]
fn contradictory_options_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["--yes", "--rehearse", "rolling_upgrade.rhai", "0.11.0"],
            "'--yes' cannot be used with '--rehearse'",
        ),
        (
            vec!["--cluster", "c.toml", "--sim-speed", "5", "-e", "1"],
            "--sim-speed applies to the simulator (--sim) only",
        ),
        (vec!["--sim-bad-version", "0.11.0", "-e", "1"], "--sim"),
    ] {
        let out = bare(dir.path()).args(&args).output().unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("simulated cluster"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_usage_error_is_not_buried_under_the_simulators_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args(["--sim", "rolling_upgrade.rhai"])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(stderr.contains("missing the VERSION argument"), "{stderr}");
    assert!(!stderr.contains("client writes"), "{stderr}");

    let out = bare(dir.path())
        .args(["--sim", "-e", "let x = ;"])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 1);
    assert!(stderr.contains("<-e>:1:9"), "{stderr}");
    assert!(
        !stderr.contains("simulated cluster"),
        "a syntax error is found before the simulator starts: {}",
        text(stderr.as_bytes())
    );
}

/// Every stock runbook can be tried on the embedded simulator the way the README shows it.
#[test]
fn every_stock_runbook_runs_on_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    for (runbook, says) in [
        (
            vec!["--set", "monitor_secs=600", "canary_upgrade.rhai", "0.11.0"],
            "next: neumann-script rolling_upgrade.rhai 0.11.0",
        ),
        (vec!["rollback.rhai", "0.10.3"], "rollback complete"),
        (
            vec!["blue_green.rhai", "1.0.0"],
            "traffic is on green (1.0.0)",
        ),
        (
            vec!["rolling_upgrade.rhai", "0.11.0"],
            "every node runs 0.11.0",
        ),
    ] {
        let mut args = vec!["--sim", "--sim-speed", "50"];
        args.extend(&runbook);
        let out = bare(dir.path()).args(&args).output().unwrap();
        let (stdout, stderr) = expect(&out, 0);
        assert!(
            stdout.contains(says) || stderr.contains(says),
            "{runbook:?}:\n{stdout}\n{stderr}"
        );
        // A rollback pauses the cluster, as the runbook says, and the simulated clients count that.
        if runbook[0] != "rollback.rhai" {
            assert!(
                stderr.contains(" 0 failed;"),
                "{runbook:?}: the simulator counted failed writes:\n{stderr}"
            );
        }
    }
}

#[test]
fn logged_lists_read_as_lists_not_rhai_literals() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(
        &c.run(&[
            "-e",
            "info(cluster::followers()); warn(#{node2: \"0.10.4\"}); info(`versions: ${cluster::versions()}`)",
        ]),
        0,
    );
    assert!(stderr.contains("node2, node3"), "{stderr}");
    assert!(stderr.contains("warning: node2=0.10.4"), "{stderr}");
    assert!(
        stderr.contains("versions: node1=0.10.4, node2=0.10.4, node3=0.10.4"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("[\"") && !stderr.contains("#{"),
        "{stderr}"
    );
}
