//! The programs some integration tests run for real (`.ci/run` installs each), found where Debian puts
//! them, and skipped with a visible line where they are missing, except under CI, where a missing one is
//! a broken pipeline and fails the test.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;

/// A program a test needs.
pub struct Program {
    /// What the messages call it.
    name: &'static str,
    /// Its file names, looked up on PATH, then in /usr/bin and /usr/sbin (PATH can be trimmed under
    /// test runners, and sshd lives in sbin).
    files: &'static [&'static str],
    /// The Debian package that has it.
    package: &'static str,
}

pub const ETCD: Program = Program::new("etcd", &["etcd"], "etcd-server");
pub const PROMETHEUS: Program = Program::new("prometheus", &["prometheus"], "prometheus");
pub const SSHD: Program = Program::new("sshd", &["sshd"], "openssh-server");
pub const TMUX: Program = Program::new("tmux", &["tmux"], "tmux");
pub const CHROMIUM: Program =
    Program::new("chromium", &["chromium", "chromium-browser"], "chromium");

impl Program {
    const fn new(
        name: &'static str,
        files: &'static [&'static str],
        package: &'static str,
    ) -> Program {
        Program {
            name,
            files,
            package,
        }
    }
}

/// The program's executable, if it is installed.
pub fn find_program(p: &Program) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/bin", "/usr/sbin"].map(PathBuf::from))
        .flat_map(|dir| p.files.iter().map(move |f| dir.join(f)))
        .find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The program, or `None` after saying so where a developer will see it; `test` names what is skipped.
/// Under CI (`CI` set and not `0` or `false`) a missing program fails the test instead.
pub fn binary_or_skip(test: &str, p: &Program) -> Option<PathBuf> {
    if let Some(bin) = find_program(p) {
        return Some(bin);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "{test}: {} not installed but CI is set; .ci/run should have installed it (apt-get install {})",
        p.name,
        p.package
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, which would hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {} not installed (apt-get install {}): {test}",
        p.name,
        p.package
    );
    None
}

/// A loopback port free now. Another process can take it before the server binds it, so the servers
/// that use one try again with a fresh port when theirs was taken.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}
