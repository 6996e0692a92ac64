//! The blue-green runbook between two simulated clusters, with the traffic switch as a real command.

use crate::support::{expect, Cluster};

/// Blue on 0.11.2 with an inventory naming green (on `green_version`) and a switch that records where
/// traffic went in a file; `switch` overrides the command.
fn pair(green_version: &str, switch: Option<&str>) -> (Cluster, Cluster, std::path::PathBuf) {
    let blue = Cluster::start(3, "0.11.2");
    let green = Cluster::start(3, green_version);
    let traffic = blue.dir.path().join("traffic");
    let default = format!("printf %s {{to}} > {}", traffic.display());
    let mut inv = std::fs::read_to_string(&blue.inventory).unwrap();
    inv.push_str(&format!(
        "\n[blue_green]\ngreen = \"{}\"\nswitch = \"{}\"\n",
        green.inventory.display(),
        switch.unwrap_or(&default)
    ));
    std::fs::write(&blue.inventory, inv).unwrap();
    (blue, green, traffic)
}

#[test]
fn traffic_moves_to_a_healthy_green_and_blue_is_kept() {
    let (blue, green, traffic) = pair("1.0.0", None);
    let (stdout, stderr) = expect(&blue.run(&["--yes", "blue_green.rhai", "1.0.0"]), 0);
    assert!(
        stdout.contains("traffic is on green (1.0.0); blue is kept for rollback"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&traffic).unwrap(), "green");
    assert_eq!(
        blue.events_of(&["snapshot"]).len(),
        1,
        "blue was snapshotted"
    );
    assert!(
        blue.versions().values().all(|v| v == "0.11.2"),
        "blue untouched"
    );
    assert!(green.versions().values().all(|v| v == "1.0.0"));
    assert_eq!(blue.events_of(&["drain", "stop", "pause"]), vec![]);
}

#[test]
fn a_green_on_the_wrong_version_changes_nothing() {
    let (blue, _green, traffic) = pair("0.11.2", None);
    let (_, stderr) = expect(&blue.run(&["--yes", "blue_green.rhai", "1.0.0"]), 3);
    assert!(
        stderr.contains("green node node1 runs 0.11.2, not 1.0.0"),
        "{stderr}"
    );
    assert!(!traffic.exists());
    assert_eq!(blue.events_of(&["snapshot"]), vec![]);
}

#[test]
fn a_failing_switch_stops_safely_with_traffic_on_blue() {
    let (blue, _green, _) = pair("1.0.0", Some("echo lb unreachable >&2; exit 7"));
    let (_, stderr) = expect(&blue.run(&["--yes", "blue_green.rhai", "1.0.0"]), 3);
    assert!(stderr.contains("switch traffic to green failed: `echo lb unreachable >&2; exit 7` exited with status 7: lb unreachable"), "{stderr}");
    assert!(
        stderr.contains("Traffic should still be on blue"),
        "{stderr}"
    );
}

#[test]
fn a_green_that_fails_verification_gets_traffic_switched_back() {
    let (blue, green, traffic) = pair("1.0.0", None);
    expect(&green.run(&["-e", "cluster::pause()"]), 0);
    let (_, stderr) = expect(&blue.run(&["--yes", "blue_green.rhai", "1.0.0"]), 3);
    assert!(
        stderr.contains("green failed its test transaction after the switch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Traffic was switched back to blue"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&traffic).unwrap(), "blue");
}

#[test]
fn without_a_blue_green_section_the_message_says_what_to_add() {
    let c = Cluster::start(3, "0.11.2");
    let (_, stderr) = expect(&c.run(&["--yes", "blue_green.rhai", "1.0.0"]), 2);
    assert!(
        stderr.contains("has no [blue_green] section naming the green cluster"),
        "{stderr}"
    );
}

#[test]
fn a_simulated_pair_without_a_switch_command_moves_the_simulators_clients() {
    let blue = Cluster::start(3, "0.11.2");
    let green = Cluster::start(3, "1.0.0");
    let mut inv = std::fs::read_to_string(&blue.inventory).unwrap();
    inv.push_str(&format!(
        "\n[blue_green]\ngreen = \"{}\"\n",
        green.inventory.display()
    ));
    std::fs::write(&blue.inventory, inv).unwrap();
    expect(&blue.run(&["--yes", "blue_green.rhai", "1.0.0"]), 0);
    let switched: Vec<String> = blue
        .events()
        .into_iter()
        .filter(|e| e.kind == "traffic")
        .map(|e| e.detail)
        .collect();
    assert_eq!(switched, vec!["green"]);
}

#[test]
fn a_real_pair_without_a_switch_command_is_a_usage_error() {
    let blue = Cluster::start(3, "0.11.2");
    let green = Cluster::start(3, "1.0.0");
    // Without `[sim] control` the cluster is not simulated: its traffic needs a command.
    let inv: String = std::fs::read_to_string(&blue.inventory)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("[sim]") && !l.starts_with("control"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &blue.inventory,
        format!(
            "{inv}\n[blue_green]\ngreen = \"{}\"\n",
            green.inventory.display()
        ),
    )
    .unwrap();
    let (_, stderr) = expect(
        &blue.run(&["--yes", "-e", "cluster::switch_traffic(\"green\")"]),
        2,
    );
    assert!(
        stderr.contains("has no `switch` command under [blue_green]"),
        "{stderr}"
    );
}

/// The README's way: every stock runbook runs on the embedded simulator, blue-green included (a green
/// simulated cluster on VERSION is started beside the blue one).
#[test]
fn blue_green_runs_on_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::bare(dir.path())
        .args(["--sim", "--sim-speed", "20", "blue_green.rhai", "1.0.0"])
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(stdout.contains("traffic is on green (1.0.0)"), "{stdout}");
    assert!(
        stderr.contains("simulated green cluster: 3 nodes on 1.0.0"),
        "{stderr}"
    );
}
