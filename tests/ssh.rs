//! Host operations over SSH against a real OpenSSH server on loopback.

use std::path::Path;

use crate::ssh_support::SshServer;
use crate::support::{binary_or_skip, expect, Cluster, BIN, SSHD};

/// An inventory for the simulator whose host operations go over SSH to `server`, where the remote command
/// (`neumann-script sim ctl`) performs them on the simulator. `ssh` is the [ssh] table's body.
fn ssh_inventory(c: &Cluster, server: &SshServer, target: &str, ssh: &str) -> std::path::PathBuf {
    let sim: toml::Table = toml::from_str(&std::fs::read_to_string(&c.inventory).unwrap()).unwrap();
    let control = sim["sim"]["control"].as_str().unwrap();
    let ctl = format!("{BIN} sim ctl {control} {{node}}");
    let mut inv = format!(
        "[defaults]\nstop = \"{ctl} stop\"\nstart = \"{ctl} start\"\nrestart = \"{ctl} restart\"\ninstall = \"{ctl} install {{version}}\"\nstage = \"{ctl} stage {{version}}\"\nactivate = \"{ctl} activate {{version}}\"\n\n[ssh]\n{ssh}\n"
    );
    for node in sim["nodes"].as_array().unwrap() {
        inv.push_str(&format!(
            "\n[[nodes]]\nid = \"{}\"\nadmin_url = \"{}\"\nssh = \"{target}\"\n",
            node["id"].as_str().unwrap(),
            node["admin_url"].as_str().unwrap()
        ));
    }
    let path = server.dir.path().join("ssh-cluster.toml");
    std::fs::write(&path, inv).unwrap();
    path
}

fn trusted(server: &SshServer) -> String {
    format!(
        "key = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout_secs = 5",
        server.client_key.display(),
        server.known_hosts.display()
    )
}

fn run(c: &Cluster, inv: &Path, args: &[&str]) -> std::process::Output {
    crate::support::bare(c.dir.path())
        .arg("--cluster")
        .arg(inv)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_rolling_upgrade_with_every_host_operation_over_ssh() {
    if binary_or_skip(
        "ssh::a_rolling_upgrade_with_every_host_operation_over_ssh",
        &SSHD,
    )
    .is_none()
    {
        return;
    }
    let server = SshServer::start().unwrap_or_else(|e| panic!("{e}"));
    let c = Cluster::start(3, "0.10.4");
    let inv = ssh_inventory(&c, &server, &server.target(), &trusted(&server));
    let (stdout, stderr) = expect(
        &run(
            &c,
            &inv,
            // In the window, so `install` goes over SSH too (the default path is the next test).
            &[
                "--yes",
                "--set",
                "prestage=false",
                "--journal",
                "j.jsonl",
                "rolling_upgrade.rhai",
                "0.11.0",
            ],
        ),
        0,
    );
    assert!(stdout.contains("every node runs 0.11.0"), "{stderr}");
    assert!(
        stderr.contains("node2: install (`") && stderr.contains("sim ctl 127.0.0.1:"),
        "{stderr}"
    );
    assert!(c.versions().values().all(|v| v == "0.11.0"));
    assert_eq!(c.stats().client_writes_failed, 0);
    // Twelve host commands (stop, install and start on each node), one SSH login: the master is reused.
    let log = server.stop_and_log();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
}

#[test]
fn a_prestaged_rolling_upgrade_stages_and_activates_over_ssh() {
    if binary_or_skip(
        "ssh::a_prestaged_rolling_upgrade_stages_and_activates_over_ssh",
        &SSHD,
    )
    .is_none()
    {
        return;
    }
    let server = SshServer::start().unwrap_or_else(|e| panic!("{e}"));
    let c = Cluster::start(3, "0.10.4");
    let inv = ssh_inventory(&c, &server, &server.target(), &trusted(&server));
    let (_, stderr) = expect(
        &run(
            &c,
            &inv,
            // The default: pre-staged.
            &["--yes", "rolling_upgrade.rhai", "0.11.0"],
        ),
        0,
    );
    assert!(
        stderr.contains("node2: activate (`") && stderr.contains(" activate 0.11.0`"),
        "{stderr}"
    );
    assert!(c.versions().values().all(|v| v == "0.11.0"));
    assert_eq!(c.events_of(&["activate"]).len(), 3);
    assert!(c.events_of(&["install"]).is_empty());
    assert_eq!(c.stats().client_writes_failed, 0);
    // An activate of a version never staged exits non-zero through ssh too, naming node and operation.
    let (_, stderr) = expect(
        &run(&c, &inv, &["-e", r#"node::activate("node1", "0.11.1")"#]),
        1,
    );
    assert!(stderr.contains("node1: activate failed"), "{stderr}");
}

#[test]
fn exec_arguments_arrive_intact_and_a_failing_command_is_a_result() {
    if binary_or_skip(
        "ssh::exec_arguments_arrive_intact_and_a_failing_command_is_a_result",
        &SSHD,
    )
    .is_none()
    {
        return;
    }
    let server = SshServer::start().unwrap_or_else(|e| panic!("{e}"));
    let c = Cluster::start(3, "0.10.4");
    let inv = ssh_inventory(&c, &server, &server.target(), &trusted(&server));
    let script = c.dir.path().join("exec.rhai");
    std::fs::write(
        &script,
        "let cmd = \"printf '[%s]' 'a b' \\\"it's\\\" '$HOME' 'x;y' 'l1\\nl2'\";\n\
         let r = node::exec(\"node2\", cmd);\n\
         print(r.stdout);\n\
         let f = node::exec(\"node2\", \"echo oops >&2; exit 3\");\n\
         print(`${f.status}|${f.stderr}`);\n",
    )
    .unwrap();
    let (stdout, stderr) = expect(&run(&c, &inv, &[script.to_str().unwrap()]), 0);
    assert_eq!(
        stdout, "[a b][it's][$HOME][x;y][l1\nl2]\n3|oops\n\n",
        "{stderr}"
    );
}

/// Runs `node::exec` through an inventory whose SSH goes to `target` with `ssh` settings; returns stderr.
fn exec_fails(c: &Cluster, server: &SshServer, target: &str, ssh: &str) -> String {
    let inv = ssh_inventory(c, server, target, ssh);
    let (_, stderr) = expect(&run(c, &inv, &["-e", "node::exec(\"node1\", \"true\")"]), 1);
    stderr
}

#[test]
fn connection_failures_name_the_host_and_the_real_cause() {
    if binary_or_skip(
        "ssh::connection_failures_name_the_host_and_the_real_cause",
        &SSHD,
    )
    .is_none()
    {
        return;
    }
    let server = SshServer::start().unwrap_or_else(|e| panic!("{e}"));
    let c = Cluster::start(3, "0.10.4");
    let target = server.target();
    let key = server.client_key.display().to_string();

    // An unknown host key is refused under strict checking (the default).
    let empty = server.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = exec_fails(
        &c,
        &server,
        &target,
        &format!("key = \"{key}\"\nknown_hosts = \"{}\"", empty.display()),
    );
    assert!(
        err.contains(&format!("node1: exec failed: ssh {target}: ")),
        "{err}"
    );
    assert!(err.contains("Host key verification failed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "nothing was added under strict checking"
    );

    // accept-new is an explicit choice, and then the key is recorded.
    let inv = ssh_inventory(
        &c,
        &server,
        &target,
        &format!(
            "key = \"{key}\"\nknown_hosts = \"{}\"\nhost_key_checking = \"accept-new\"",
            empty.display()
        ),
    );
    expect(
        &run(&c, &inv, &["-e", "node::exec(\"node1\", \"true\").status"]),
        0,
    );
    // (Hashed or not depends on the client's HashKnownHosts; the server's key is what must be there.)
    let recorded = std::fs::read_to_string(&empty).unwrap();
    let host_key = std::fs::read_to_string(server.dir.path().join("host_key.pub")).unwrap();
    let key_body = host_key.split_whitespace().nth(1).unwrap();
    assert!(recorded.contains(key_body), "{recorded}");

    // A key the server does not accept.
    let stranger = server.dir.path().join("stranger");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(ok.success());
    let err = exec_fails(
        &c,
        &server,
        &target,
        &format!(
            "key = \"{}\"\nknown_hosts = \"{}\"",
            stranger.display(),
            server.known_hosts.display()
        ),
    );
    assert!(err.contains("Permission denied"), "{err}");

    // A closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = exec_fails(
        &c,
        &server,
        &format!("{}@127.0.0.1:{closed}", server.user),
        &trusted(&server),
    );
    assert!(err.contains("Connection refused"), "{err}");

    // A host that never answers (a listener that accepts and stays silent): given up on within the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let err = exec_fails(
        &c,
        &server,
        &format!("{}@127.0.0.1:{port}", server.user),
        &format!(
            "{}\nconnect_timeout_secs = 2",
            trusted(&server).replace("connect_timeout_secs = 5", "")
        ),
    );
    assert!(
        err.to_lowercase().contains("timed out") || err.contains("no connection within"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn a_bad_ssh_target_is_an_inventory_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[[nodes]]\nid = \"node1\"\nhost = \"h\"\nssh = \"root@h:port\"\n",
    )
    .unwrap();
    let out = crate::support::bare(dir.path())
        .args(["--cluster", "c.toml", "-e", "1"])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.contains("ssh target `root@h:port` has a bad port"),
        "{stderr}"
    );
}
