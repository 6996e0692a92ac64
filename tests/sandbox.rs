//! On a simulated cluster, host commands go to the simulator and never to this machine's shell.

use serde_json::{json, Value};

use crate::support::{bare, expect, Cluster};

fn exec(c: &Cluster, node: &str, command: &str) -> Value {
    let code = format!("node::exec({node:?}, {command:?})");
    let (stdout, _) = expect(&c.run(&["--format", "json", "-e", &code]), 0);
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn exec_on_the_embedded_simulator_never_reaches_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("G");
    let cmd = format!("id; touch F; touch {}", outside.display());
    let code = format!("node::exec(\"node1\", {cmd:?})");
    let (stdout, _) = expect(
        &bare(dir.path())
            .args(["--sim", "--format", "json", "-e", &code])
            .output()
            .unwrap(),
        0,
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], 127, "{v}");
    assert_eq!(v["stdout"], "", "{v}");
    assert!(
        v["stderr"]
            .as_str()
            .unwrap()
            .contains("not available in the simulator"),
        "{v}"
    );
    assert!(!dir.path().join("F").exists(), "F was created in the cwd");
    assert!(!outside.exists(), "{} was created", outside.display());
}

#[test]
fn an_inventory_naming_a_simulator_is_sandboxed_too() {
    let c = Cluster::start(3, "0.10.4");
    let v = exec(&c, "node1", "touch F");
    assert_eq!(v["status"], 127, "{v}");
    assert!(!c.dir.path().join("F").exists());
}

#[test]
fn the_simulated_host_answers_like_a_node() {
    let c = Cluster::start(3, "0.10.4");
    assert_eq!(
        exec(&c, "node1", "neumann --version"),
        json!({"status": 0, "stdout": "neumann 0.10.4\n", "stderr": ""})
    );
    assert_eq!(
        exec(&c, "node1", "systemctl is-active neumann"),
        json!({"status": 0, "stdout": "active\n", "stderr": ""})
    );
    // Stopped by hand through the simulator's host side, not by the tool.
    c.host("node2", "stop");
    assert_eq!(
        exec(&c, "node2", "systemctl is-active neumann"),
        json!({"status": 3, "stdout": "inactive\n", "stderr": ""})
    );
    // The binary on disk answers `--version`: after an install, before the restart, the new one.
    expect(&c.run(&["-e", "node::install(\"node3\", \"0.11.0\")"]), 0);
    assert!(c
        .events_of(&["install"])
        .contains(&("install".to_string(), "node3".to_string())));
    assert_eq!(
        exec(&c, "node3", "neumann --version")["stdout"],
        "neumann 0.11.0\n"
    );
    assert_eq!(exec(&c, "node1", "uname -a")["status"], 127);
}
