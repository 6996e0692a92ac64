//! Responsiveness: what cannot fix itself is reported at once, a slow call says what it waits for, and
//! errors state the real time spent.

use std::time::{Duration, Instant};

use crate::support::{bare, expect, Cluster};

/// The simulator's inventory without the `[[nodes]]` block of `drop`.
fn inventory_without(c: &Cluster, drop: &str) -> String {
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    text.split("\n[[nodes]]")
        .enumerate()
        .filter(|(i, block)| *i == 0 || !block.contains(&format!("id = \"{drop}\"")))
        .map(|(i, block)| {
            if i == 0 {
                block.to_string()
            } else {
                format!("\n[[nodes]]{block}")
            }
        })
        .collect()
}

/// Far beyond what any assertion below allows: a run that waited it out fails the test.
const LONG: &str = "600";

#[test]
fn an_inventory_missing_a_member_is_reported_at_once_naming_it() {
    let c = Cluster::start(3, "0.10.4");
    let partial = c.dir.path().join("two-of-three.toml");
    std::fs::write(&partial, inventory_without(&c, "node3")).unwrap();
    let partial_arg = partial.to_str().unwrap();

    let started = Instant::now();
    let out = bare(c.dir.path())
        .args(["--cluster", partial_arg, "--yes", "--set"])
        .arg(format!("healthy_timeout_secs={LONG}"))
        .args(["rolling_upgrade.rhai", "0.11.0"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let (_, stderr) = expect(&out, 3);
    let stop = stderr
        .lines()
        .find(|l| l.starts_with("stopped safely:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        stop.contains(&format!(
            "cluster: the inventory `{partial_arg}` does not match the cluster's members (node1, node2, node3): \
             the cluster has node3 that the inventory does not list. Waiting cannot fix this: correct the inventory"
        )),
        "{stop}"
    );
    assert!(
        took < Duration::from_secs(60),
        "took {took:?} with healthy_timeout {LONG} s"
    );
    assert!(c.events_of(&["drain", "stop", "install"]).is_empty());

    // The other way round: the inventory names a node the cluster does not have.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let extra = c.dir.path().join("four.toml");
    let mut text = std::fs::read_to_string(&c.inventory).unwrap();
    text.push_str(&format!(
        "\n[[nodes]]\nid = \"node4\"\nadmin_url = \"http://127.0.0.1:{port}\"\n"
    ));
    std::fs::write(&extra, text).unwrap();
    let started = Instant::now();
    let out = bare(c.dir.path())
        .args(["--cluster", extra.to_str().unwrap(), "-e"])
        .arg(format!("cluster::wait_healthy({LONG})"))
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 1);
    assert!(
        stderr.contains("the inventory lists node4 that the cluster does not have as a member"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn nodes_that_accept_and_never_answer_get_a_live_line_and_the_real_time_spent() {
    // Listening, never accepting: connections complete in the kernel and requests go unanswered.
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hung.toml");
    let mut text = String::new();
    for (i, l) in listeners.iter().enumerate() {
        text.push_str(&format!(
            "[[nodes]]\nid = \"node{}\"\nadmin_url = \"http://{}\"\n\n",
            i + 1,
            l.local_addr().unwrap()
        ));
    }
    std::fs::write(&inventory, text).unwrap();

    let started = Instant::now();
    let out = bare(dir.path())
        .args([
            "--cluster",
            inventory.to_str().unwrap(),
            "-e",
            "cluster::health()",
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    let (_, stderr) = expect(&out, 1);
    assert!(
        stderr
            .lines()
            .any(|l| l.ends_with("  waiting for health on node1, node2, node3")),
        "no live line while the call had no answer:\n{stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: cluster: no node answered in "))
        .unwrap_or_else(|| panic!("{stderr}"));
    // "in 3 s" or "in 3.1 s": the time this run actually spent, not a per-request limit.
    let stated = stated_secs(error, "no node answered in ");
    assert!(
        stated >= 2.5 && stated <= took.as_secs_f64() + 0.1,
        "stated {stated} s, the process took {took:?}: {error}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    for n in ["node1", "node2", "node3"] {
        assert!(
            error.contains(&format!("{n}: health failed: GET http://127.0.0.1:")),
            "{error}"
        );
    }
    drop(listeners);
}

/// The number of seconds in "... after 3.1 s: ..." or "... in 3 s: ...".
fn stated_secs(line: &str, after: &str) -> f64 {
    let at = line
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in {line}"))
        + after.len();
    let rest = &line[at..];
    let (n, unit) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("{line}"));
    match unit {
        u if u.starts_with("ms") => n / 1000.0,
        u if u.starts_with('s') => n,
        _ => panic!("{line}"),
    }
}

#[test]
fn a_wait_that_gives_up_states_the_time_it_took_not_the_time_it_was_given() {
    let c = Cluster::start(3, "0.10.4");
    // A hung node costs each survey its 3 s probe: more than the 1 s the wait was given.
    c.inject("node3", "hang");
    let started = Instant::now();
    let (_, stderr) = expect(&c.run(&["-e", "cluster::wait_healthy(1)"]), 1);
    let took = started.elapsed().as_secs_f64();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: cluster: not healthy after "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let stated = stated_secs(error, "not healthy after ");
    assert!(
        (2.5..=took + 0.1).contains(&stated),
        "stated {stated} s, the process took {took} s: {error}"
    );
    assert!(error.contains("node3"), "{error}");
}
