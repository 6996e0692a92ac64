//! What `--version` and the journal's `run_start` say of the build: the commit it was built from, and the
//! Rhai version it embeds.
//!
//! The commit comes from git when building from a checkout (its short hash, `-dirty` when the sources
//! that go into the binary differ from it), else from the `.cargo_vcs_info.json` that `cargo package`
//! writes into a published crate, else it is `unknown` (a source tree with neither). The Rhai version is
//! the one `Cargo.lock` pins: in a checkout that is what cargo builds; a crate installed from crates.io
//! builds it with `cargo install --locked` (without `--locked` cargo resolves afresh, and may pick a newer
//! 1.x than the one named here).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What goes into the binary: a change to any of them makes the build dirty, and they are all watched
/// so the dirty flag follows an edit. Tests, docs and examples do not count.
const SOURCES: &[&str] = &[
    "src",
    "stdlib",
    "scripts",
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
];

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    for s in SOURCES {
        println!("cargo:rerun-if-changed={s}");
    }
    let commit = from_git(&dir)
        .or_else(|| from_package(&dir))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=NEUMANN_SCRIPT_COMMIT={commit}");
    let rhai = std::fs::read_to_string(dir.join("Cargo.lock"))
        .ok()
        .and_then(|lock| locked_version(&lock, "rhai"))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=NEUMANN_SCRIPT_RHAI={rhai}");
}

/// `git ARGS` in `dir`, its trimmed output when it succeeds. `GIT_OPTIONAL_LOCKS=0` keeps `git status`
/// from rewriting the index, which would otherwise look like a change to the next build.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The short hash of HEAD, `-dirty` when the sources differ from it; `None` unless `dir` is the top of
/// its own checkout (a crate unpacked inside some other repository is not that repository's commit).
fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), dir) {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short=7", "HEAD"])?;
    // A new commit, or a checkout of another branch, runs this again.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend_from_slice(SOURCES);
    let dirty = !git(dir, &status)?.is_empty();
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// The commit `cargo package` recorded in `.cargo_vcs_info.json` (`{"git": {"sha1": "...", "dirty":
/// true}, ...}`), shortened as git shortens it.
fn from_package(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = after.find('"')? + 1;
    let len = after[start..].find('"')?;
    let sha: String = after[start..start + len].chars().take(7).collect();
    if sha.len() < 7 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dirty = text.contains("\"dirty\": true") || text.contains("\"dirty\":true");
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

/// The version `Cargo.lock` gives the package `name`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let want = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == want {
            let version = lines.next()?.trim();
            return version
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_string);
        }
    }
    None
}
