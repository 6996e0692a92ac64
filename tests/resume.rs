//! Stops that tell the truth, and the resume matrix: a rolling upgrade interrupted at each step of the
//! per-node procedure (the default pre-staged one, staging included, and the in-window install), then
//! run again, ends with every node on the target and no failed client write in the simulator's records. Where the signal lands within or after its step does not matter to the
//! assertions: whatever it interrupts, the re-run must finish the job.

use neumann_script::sim::SimConfig;

use crate::support::{expect, journal_ops, text, Cluster, Running, Trigger};

/// Slow enough that every step of a node's upgrade lasts long enough to be seen and interrupted.
fn matrix_cluster() -> Cluster {
    Cluster::with(SimConfig {
        speed: 5.0,
        ..Default::default()
    })
}

/// The inventory as recovery hints name it: its absolute path (a temp dir's needs no shell quoting).
fn flag_path(c: &Cluster) -> String {
    std::fs::canonicalize(&c.inventory)
        .unwrap()
        .display()
        .to_string()
}

/// The upgrade's arguments: the default pre-staged path, or the in-window install.
fn upgrade_args(prestage: bool) -> Vec<&'static str> {
    let mut a = vec!["--yes"];
    if !prestage {
        a.extend(["--set", "prestage=false"]);
    }
    a.extend(["rolling_upgrade.rhai", "0.11.0"]);
    a
}

/// Interrupts `rolling_upgrade.rhai 0.11.0` when `trigger` is seen, with `signal`, then runs it again
/// the same way. `code` is the exit code the signal ends the run with; `None` for SIGKILL, which gives
/// the run no say: the re-run alone must put right what it left.
fn interrupt_then_resume(trigger: Trigger, signal: &str, code: Option<i32>, prestage: bool) {
    let c = matrix_cluster();
    // Once leadership is handed over only the old leader's short procedure is left, shorter than a
    // loaded machine may take to deliver the signal. Slowed from the hand-over on, the old leader cannot
    // catch up after its restart until healed, so the signal always lands inside the run.
    let held = matches!(trigger, Trigger::Said(t) if t.starts_with("transfer leadership"))
        .then(|| c.leader());
    if let Some(l) = &held {
        c.inject_when(l, "slow_catchup", "transfer", l);
    }
    let mut run = Running::start(&c, &upgrade_args(prestage));
    run.wait_for(&c, trigger);
    run.signal(signal);
    let out = run.finish();
    let stderr = text(&out.stderr);
    if let Some(l) = &held {
        c.inject(l, "heal");
    }
    assert_eq!(out.status.code(), code, "{trigger:?}\n{stderr}");
    if code.is_some() {
        said_what_it_did(&c, trigger, prestage, &stderr);
    }
    let again = c.run(&upgrade_args(prestage));
    let (_, stderr2) = expect(&again, 0);
    assert_eq!(
        c.version_list(),
        vec!["0.11.0", "0.11.0", "0.11.0"],
        "{stderr}\n--- re-run\n{stderr2}"
    );
    assert_eq!(c.not_up(), vec![], "{stderr}\n--- re-run\n{stderr2}");
    assert!(!c.paused(), "{stderr}\n--- re-run\n{stderr2}");
    let st = c.stats();
    assert_eq!(
        (st.client_writes_failed, st.lost_committed_writes),
        (0, 0),
        "{trigger:?}\n{stderr}\n--- re-run\n{stderr2}"
    );
}

/// What an interrupted run (not a killed one) says as it ends: what it changed, how to go on against this
/// very cluster, and that no node is left out of service by a drain the interrupt cut short.
fn said_what_it_did(c: &Cluster, trigger: Trigger, prestage: bool, stderr: &str) {
    let inventory = flag_path(c);
    // The report says what this run changed and how to go on, against this very cluster. Pre-staged,
    // the first change is the staging of every node; in the window, the first node's drain.
    let first = match prestage {
        true => "this run, before it was interrupted: cluster (stage_all 0.11.0",
        false => "this run, before it was interrupted: node",
    };
    assert!(stderr.contains(first), "{stderr}");
    let rerun = match prestage {
        true => format!("neumann-script --cluster {inventory} rolling_upgrade.rhai 0.11.0"),
        false => format!(
            "neumann-script --cluster {inventory} --set 'prestage=false' rolling_upgrade.rhai 0.11.0"
        ),
    };
    assert!(
        stderr.contains(&format!(
            "to continue, run it again (it re-reads the cluster and decides what is left; a stock runbook skips the nodes already on its target): {rerun}"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("nodes already done are skipped"),
        "{stderr}"
    );
    // No node is left out of service by a drain the interrupt cut short.
    let out = c.run(&["--format", "json", "-e", "cluster::members()"]);
    let (members, _) = expect(&out, 0);
    let members: Vec<serde_json::Value> = serde_json::from_str(&members).unwrap();
    for m in &members {
        assert!(
            m["state"] != "draining" && m["state"] != "drained",
            "{trigger:?}: {m} left drained\n{stderr}"
        );
    }
}

/// One test per step of the per-node procedure, for one signal and the exit code it ends with: the
/// pre-staged path (staging every node, then drain, stop, activate, start, rejoin, catch up, and the
/// leader's hand-over), and the in-window install.
macro_rules! resume_matrix {
    ($module:ident, $signal:literal, $code:expr) => {
        mod $module {
            use super::{interrupt_then_resume, Trigger};

            #[test]
            fn at_stage_all() {
                interrupt_then_resume(Trigger::Said("staging 0.11.0 on"), $signal, $code, true);
            }
            #[test]
            fn at_drain() {
                interrupt_then_resume(Trigger::Event("drain", "node2"), $signal, $code, true);
            }
            #[test]
            fn at_wait_drained() {
                interrupt_then_resume(
                    Trigger::Said("waiting for node2 to drain"),
                    $signal,
                    $code,
                    true,
                );
            }
            #[test]
            fn at_stop() {
                interrupt_then_resume(Trigger::Event("stop", "node2"), $signal, $code, true);
            }
            #[test]
            fn at_activate() {
                interrupt_then_resume(
                    Trigger::Said("node2: activate (`ln -sfn"),
                    $signal,
                    $code,
                    true,
                );
            }
            #[test]
            fn at_install_in_the_window() {
                interrupt_then_resume(
                    Trigger::Said("node2: install (`cargo install"),
                    $signal,
                    $code,
                    false,
                );
            }
            #[test]
            fn at_start() {
                interrupt_then_resume(Trigger::Event("start", "node2"), $signal, $code, true);
            }
            #[test]
            fn at_wait_rejoined() {
                interrupt_then_resume(
                    Trigger::Said("waiting for node2 to rejoin"),
                    $signal,
                    $code,
                    true,
                );
            }
            #[test]
            fn at_wait_caught_up() {
                interrupt_then_resume(
                    Trigger::Said("waiting for node2 to catch up"),
                    $signal,
                    $code,
                    true,
                );
            }
            #[test]
            fn at_transfer() {
                interrupt_then_resume(
                    Trigger::Said("transfer leadership to"),
                    $signal,
                    $code,
                    true,
                );
            }
        }
    };
}

resume_matrix!(sigint, "INT", Some(130));
resume_matrix!(sigterm, "TERM", Some(143));
resume_matrix!(sigkill, "KILL", None);

#[test]
fn ctrl_c_during_a_drain_wait_undrains_the_node_and_journals_it() {
    let c = matrix_cluster();
    let j = c.dir.path().join("j.jsonl");
    let mut run = Running::start(
        &c,
        &[
            "--journal",
            j.to_str().unwrap(),
            "-e",
            r#"node::drain("node2"); node::wait_drained("node2", 30); sleep(60)"#,
        ],
    );
    run.wait_for(&c, Trigger::Event("drain", "node2"));
    run.signal("INT");
    let (_, stderr) = expect(&run.finish(), 130);
    // The simulator saw the node undrained after the drain.
    let ev = c.events_of(&["drain", "undrain"]);
    assert_eq!(
        ev,
        vec![
            ("drain".to_string(), "node2".to_string()),
            ("undrain".to_string(), "node2".to_string())
        ]
    );
    assert!(
        stderr.contains("node2: undrained: the run was interrupted while the node was drained"),
        "{stderr}"
    );
    assert!(
        stderr.contains("this run, before it was interrupted: node2 (drain, undrain)"),
        "{stderr}"
    );
    // A snippet does not claim a stock runbook's way of resuming.
    assert!(stderr.contains("a snippet does not resume"), "{stderr}");
    // The mutating calls, in order; the run's course (`"event"` lines) is journaled beside them.
    let ops: Vec<String> = journal_ops(&j)
        .iter()
        .map(|v| v["op"].to_string())
        .collect();
    assert_eq!(
        ops,
        vec!["\"node::drain\"", "\"node::undrain\"", "\"interrupted\""]
    );
}

#[test]
fn the_second_ctrl_c_hint_names_the_cluster_it_was_run_against() {
    let c = Cluster::with(SimConfig {
        speed: 2.0,
        ..Default::default()
    });
    // In the window: the install that follows the stop lasts 1.5 s at this speed, inside the critical
    // section (a pre-staged activation is over at once).
    let mut run = Running::start(&c, &upgrade_args(false));
    run.wait_for(&c, Trigger::Event("stop", "node2"));
    run.signal("INT");
    run.wait_for(&c, Trigger::Said("finishing the restart of node2 first"));
    run.signal("INT");
    let (_, stderr) = expect(&run.finish(), 130);
    let hint = format!(
        "start it with: neumann-script --cluster {} -e 'node::start(\"node2\")'",
        flag_path(&c)
    );
    assert!(stderr.contains(&hint), "{stderr}");
}

#[test]
fn a_node_brought_back_still_catching_up_is_not_called_as_it_was() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node2", "fail_install");
    c.inject("node2", "slow_catchup");
    // In the window: the install fails with node2 down (pre-staged, the same fault stops the run at
    // staging, before any stop).
    let out = c.run(&[
        "--yes",
        "--set",
        "prestage=false",
        "--set",
        "catchup_timeout_secs=2",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains(
            "node2 was started again on 0.10.4 and has rejoined; it is up, catching up, lag"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("the cluster is as it was before this node"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "Follow it with: neumann-script --cluster {} -e 'node::wait_caught_up(\"node2\", 100, 2)'",
            flag_path(&c)
        )),
        "{stderr}"
    );
    // True when said: the simulator has not logged node2 catching up since its restart.
    let ev = c.events_of(&["start", "caught_up"]);
    let last_start = ev
        .iter()
        .rposition(|(k, n)| k == "start" && n == "node2")
        .unwrap();
    assert!(
        !ev[last_start..]
            .iter()
            .any(|(k, n)| k == "caught_up" && n == "node2"),
        "{ev:?}"
    );
}
