//! Inventories, scripts and `--set` are checked before anything talks to a cluster; the journal is private.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{bare, expect, Cluster};

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

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
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

#[test]
fn a_set_the_script_never_asked_for_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args([
            "--sim",
            "--set",
            "monitor_secs=5",
            "--set",
            "moniter_secs=5",
            "-e",
            "option(\"monitor_secs\", 300)",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert_eq!(stdout.trim(), "5");
    assert!(
        stderr.contains("--set moniter_secs=5 had no effect: the run never asked for an option named `moniter_secs` (it asked for `monitor_secs`)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("--set monitor_secs=5 had no effect"),
        "{stderr}"
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
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
