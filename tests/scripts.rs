//! Every script the project ships compiles, every example runs against the simulator, and copies of
//! stdlib modules on disk win over the embedded ones.

use std::path::Path;

use crate::support::{bare, expect, Cluster};

fn rhai_files(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_script_passes_check() {
    let mut files = rhai_files("scripts");
    files.extend(rhai_files("stdlib"));
    files.extend(rhai_files("examples"));
    assert!(files.len() >= 5, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = expect(
        &bare(dir.path()).arg("check").args(&files).output().unwrap(),
        0,
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len()
    );
}

#[test]
fn every_example_inventory_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            seen += 1;
            let t = tempfile::tempdir().unwrap();
            let out = bare(t.path())
                .arg("--cluster")
                .arg(&path)
                .args(["-e", "version::parse(\"0.11.0\").minor"])
                .output()
                .unwrap();
            let (stdout, _) = expect(&out, 0);
            assert_eq!(stdout.trim(), "11", "{}", path.display());
        }
    }
    assert!(seen >= 1);
}

#[test]
fn every_example_runs_against_the_simulator() {
    for file in rhai_files("examples") {
        let c = Cluster::start(3, "0.10.4");
        let (stdout, stderr) = expect(&c.run(&[&file]), 0);
        assert!(
            !stdout.is_empty(),
            "{file} printed nothing; stderr:\n{stderr}"
        );
    }
}

#[test]
fn the_api_tour_reads_real_values() {
    let c = Cluster::start(3, "0.10.4");
    let tour = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api_tour.rhai");
    let (stdout, _) = expect(&c.run(&[tour.to_str().unwrap()]), 0);
    assert!(
        stdout.contains("cluster healthy: 3/3 members healthy (quorum 2), leader node1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("leader node1, followers node2, node3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node2 is a follower, up, on 0.10.4"),
        "{stdout}"
    );
    assert!(stdout.contains("0.10.4 -> 0.11.0: rolling"), "{stdout}");
    assert!(stdout.contains("skew ok: true"), "{stdout}");
    assert!(
        stdout.contains("test transaction: ok true, through node1"),
        "{stdout}"
    );
    assert_eq!(
        c.events_of(&["drain", "undrain"]),
        vec![
            ("drain".into(), "node2".into()),
            ("undrain".into(), "node2".into())
        ]
    );
}

#[test]
fn an_edited_stdlib_module_beside_the_script_wins() {
    let c = Cluster::start(3, "0.10.4");
    let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rolling_upgrade.rhai");
    std::fs::copy(stock, c.dir.path().join("my_upgrade.rhai")).unwrap();
    std::fs::write(
        c.dir.path().join("preflight.rhai"),
        "fn rolling(target, opts) { safe_stop(`team preflight refuses ${target}`) }\n",
    )
    .unwrap();
    let (_, stderr) = expect(&c.run(&["--yes", "my_upgrade.rhai", "0.11.0"]), 3);
    assert!(stderr.contains("team preflight refuses 0.11.0"), "{stderr}");
    assert!(stderr.contains("preflight.rhai:1)"), "{stderr}");
}
