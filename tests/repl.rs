//! The REPL driven as a person would, in a real terminal (tmux), against the embedded simulator.

use std::path::Path;

use crate::support::{binary_or_skip, Term, TMUX};

/// The REPL on the embedded simulator in a fresh terminal.
fn start(socket: &str, home: &Path) -> Term {
    Term::run(socket, home, "--sim --sim-speed 20 repl")
}

#[test]
fn an_incident_session() {
    if binary_or_skip("repl::an_incident_session", &TMUX).is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let t = start(&format!("ns-repl-{}", std::process::id()), home.path());
    t.wait_for("neumann>", 1);

    // Tab completes a module function, with its open parenthesis.
    t.text("cluster::hea");
    t.key("Tab");
    t.wait_for("cluster::health(", 1);
    t.text(")");
    t.key("Enter");
    let s = t.wait_for("neumann>", 2);
    assert!(
        s.contains("cluster healthy: 3/3 members healthy") && s.contains("ID     ROLE"),
        "{s}"
    );

    // A function entered over several lines, then called.
    t.text("fn double(x) {");
    t.key("Enter");
    t.text("x * 2");
    t.key("Enter");
    t.text("}");
    t.key("Enter");
    t.wait_for("neumann>", 3);
    t.text("double(21)");
    t.key("Enter");
    t.wait_for("\n42\n", 1);

    // An error, and the session goes on.
    t.text("nosuch(1)");
    t.key("Enter");
    t.wait_for("Function not found: nosuch", 1);
    t.text("40 + 2");
    t.key("Enter");
    t.wait_for("\n42\n", 2);

    // Properties of a value in scope complete after the dot; node ids complete inside strings.
    t.text("let h = cluster::health();");
    t.key("Enter");
    t.wait_for("neumann>", 7);
    t.text("h.lea");
    t.key("Tab");
    t.wait_for("h.leader", 1);
    t.key("Enter");
    t.wait_for("\nnode1\n", 1);
    t.text("node::status(\"node");
    t.key("Tab");
    t.wait_for("node3", 1);
    t.key("C-u");

    // Ctrl-C cancels a long entry and returns to the prompt.
    // The entry says it is running before the key is sent, so Ctrl-C cannot arrive before it starts; the
    // sleep is long on the simulator's clock too (5 min of real time at x20).
    t.text("print(\"sleeping now\"); sleep(6000)");
    t.key("Enter");
    t.wait_for("\nsleeping now", 1);
    t.key("C-c");
    t.wait_for("interrupted", 2);
    t.text("help cluster::health");
    t.key("Enter");
    t.wait_for("cluster::health() -> ClusterHealth", 1);

    // Leaving: the history stays for the next session.
    t.text("exit");
    t.key("Enter");
    t.wait_for("EXIT=0", 1);
    let history =
        std::fs::read_to_string(home.path().join(".local/state/neumann-script/repl_history"))
            .unwrap();
    assert!(history.contains("double(21)"), "{history}");
}

#[test]
fn input_that_arrives_at_once_is_all_run() {
    if binary_or_skip("repl::input_that_arrives_at_once_is_all_run", &TMUX).is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let t = start(&format!("ns-fast-{}", std::process::id()), home.path());
    t.wait_for("neumann>", 1);

    // Three lines in one burst: each runs, in order, without waiting for another key.
    t.keys(&[
        "1+1",
        "Enter",
        "node::drain(\"node99\")",
        "Enter",
        "6*7",
        "Enter",
    ]);
    let s = t.wait_for("neumann>", 4);
    let two = s.find("\n2\n").expect(&s);
    let unknown = s.find("unknown node `node99`").expect(&s);
    let answer = s.find("\n42\n").expect(&s);
    assert!(two < unknown && unknown < answer, "{s}");

    // A paste without bracketed-paste markers arrives as typed lines: each line is an entry.
    t.paste("let c = 5;\nc + 100\n", false);
    t.wait_for("\n105\n", 1);

    // A bracketed paste is one entry, however many lines it holds, and waits for Enter.
    t.paste("let a = 300;\nlet b = a + 1;\nb * 2", true);
    t.key("Enter");
    t.wait_for("\n602\n", 1);
    t.text("exit");
    t.key("Enter");
    t.wait_for("EXIT=0", 1);
}

#[test]
fn at_a_terminal_a_real_run_is_rehearsed_first_and_asks() {
    if binary_or_skip(
        "repl::at_a_terminal_a_real_run_is_rehearsed_first_and_asks",
        &TMUX,
    )
    .is_none()
    {
        return;
    }
    for (answer, code) in [("n", "EXIT=3"), ("y", "EXIT=0")] {
        let c = crate::support::Cluster::start(3, "0.10.4");
        let args = format!(
            "--cluster {} rolling_upgrade.rhai 0.11.0",
            c.inventory.display()
        );
        let t = Term::run(
            &format!("ns-offer-{answer}-{}", std::process::id()),
            c.dir.path(),
            &args,
        );
        let s = t.wait_for("Run this plan against the live cluster now? [y/N]", 1);
        // Pre-staged: stage_all, then stage, drain, stop, activate, start for each of 3 nodes, and the
        // hand-over.
        assert!(s.contains("plan (17 changes, in order):"), "{s}");
        assert!(
            c.versions().values().all(|v| v == "0.10.4"),
            "nothing live before the answer"
        );
        t.text(answer);
        t.key("Enter");
        let s = t.wait_for("EXIT=", 1);
        assert!(s.contains(code), "{s}");
        let upgraded = c.versions().values().all(|v| v == "0.11.0");
        assert_eq!(upgraded, answer == "y", "{s}");
        // The journal says what was answered: a declined plan, or the live run after its rehearsal.
        let journal = c.default_journal();
        let starts: Vec<serde_json::Value> = crate::support::journal_events(&journal, "run_start")
            .into_iter()
            .filter(|r| r["script"] == "<stock>/rolling_upgrade.rhai")
            .collect();
        assert_eq!(starts[0]["rehearsal"], true, "{starts:?}");
        let rehearsal = starts[0]["run_id"].as_str().unwrap();
        let declined = crate::support::journal_events(&journal, "declined");
        if answer == "n" {
            assert_eq!(starts.len(), 1, "{starts:?}");
            assert_eq!(declined.len(), 1);
            assert_eq!(
                (&declined[0]["run_id"], &declined[0]["answer"]),
                (&rehearsal.into(), &"no".into())
            );
            let list = crate::support::expect(&c.run(&["audit"]), 0).0;
            assert!(list.contains("rehearsal, declined"), "{list}");
        } else {
            assert!(declined.is_empty(), "{declined:?}");
            assert_eq!(starts[1]["after_rehearsal"], rehearsal, "{starts:?}");
            let shown = crate::support::expect(&c.run(&["audit", "show", rehearsal]), 0).0;
            let live = starts[1]["run_id"].as_str().unwrap();
            assert!(
                shown.contains(&format!("run live after it {live}")),
                "{shown}"
            );
        }
    }
}

#[test]
fn a_question_takes_one_line_and_a_signal_ends_it_at_once() {
    if binary_or_skip(
        "repl::a_question_takes_one_line_and_a_signal_ends_it_at_once",
        &TMUX,
    )
    .is_none()
    {
        return;
    }
    let c = crate::support::Cluster::start(3, "0.10.4");
    let inv = c.inventory.display().to_string();

    // A snippet's question: the answer typed is read, and only a "y" or "yes" is yes.
    for (answer, value) in [("Yes", "true"), ("no", "false")] {
        let t = Term::run(
            &format!("ns-ask-{answer}-{}", std::process::id()),
            c.dir.path(),
            &format!("--cluster {inv} -e 'confirm(\"Go on?\")'"),
        );
        t.wait_for("Go on? [y/N]", 1);
        t.text(answer);
        t.key("Enter");
        let s = t.wait_for("EXIT=", 1);
        assert!(s.contains(&format!("\n{value}\nEXIT=0")), "{s}");
    }

    // Ctrl-C while the question waits ends the run there and then: no line has to be typed first.
    let t = Term::run(
        &format!("ns-ask-int-{}", std::process::id()),
        c.dir.path(),
        &format!("--cluster {inv} -e 'confirm(\"Go on?\"); print(\"went on\")'"),
    );
    t.wait_for("Go on? [y/N]", 1);
    t.key("C-c");
    let s = t.wait_for("EXIT=", 1);
    assert!(s.contains("EXIT=130") && !s.contains("went on"), "{s}");

    // In the REPL the question leaves the terminal to the line editor: after an answer, and after a
    // question cut short by Ctrl-C, the next entry is read by the REPL, not swallowed.
    let t = Term::run(
        &format!("ns-ask-repl-{}", std::process::id()),
        c.dir.path(),
        &format!("--cluster {inv} repl"),
    );
    t.wait_for("neumann>", 1);
    t.text("confirm(\"First?\")");
    t.key("Enter");
    t.wait_for("First? [y/N]", 1);
    t.text("y");
    t.key("Enter");
    t.wait_for("\ntrue\n", 1);
    t.text("confirm(\"Second?\")");
    t.key("Enter");
    t.wait_for("Second? [y/N]", 1);
    t.key("C-c");
    t.wait_for("interrupted", 2);
    t.text("6 * 7");
    t.key("Enter");
    t.wait_for("\n42\n", 1);
    t.text("exit");
    t.key("Enter");
    t.wait_for("EXIT=0", 1);
}

#[test]
fn a_gate_at_a_terminal_goes_on_at_y_and_not_at_another_line() {
    if binary_or_skip(
        "repl::a_gate_at_a_terminal_goes_on_at_y_and_not_at_another_line",
        &TMUX,
    )
    .is_none()
    {
        return;
    }
    let c = crate::support::Cluster::start(3, "0.10.4");
    let t = Term::run(
        &format!("ns-gate-{}", std::process::id()),
        c.dir.path(),
        &format!(
            "--cluster {} -e 'gate(\"look first\"); print(\"past the gate\")'",
            c.inventory.display()
        ),
    );
    t.wait_for("type y and Enter here to resume", 1);
    t.text("later");
    t.key("Enter");
    let s = t.wait_for("type y and Enter to resume", 1);
    assert!(!s.contains("past the gate"), "{s}");
    t.text("y");
    t.key("Enter");
    let s = t.wait_for("EXIT=", 1);
    assert!(
        s.contains("(terminal)") && s.contains("past the gate\nEXIT=0"),
        "{s}"
    );
}
