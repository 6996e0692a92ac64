//! Shell completion. `completions SHELL` prints a short registration; at each Tab the shell runs this
//! binary with `NEUMANN_SCRIPT_COMPLETE=SHELL` and the words typed so far, and clap_complete's engine
//! answers from the clap definition itself (subcommands, options, their values), plus what only the
//! binary can know: the stock scripts, the script files here, the inventory's node ids where a stock
//! script takes a NODE, and the modules of `functions MODULE`. Nothing is read from the network.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, CommandFactory};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate, SubcommandCandidates};
use clap_complete::env::{CompleteEnv, Shells};

use super::definition::{own_options, sim_value, Args};
use crate::inventory::Inventory;
use crate::script::embedded;

/// The variable through which the shell asks for completions: named for this program, so a `COMPLETE`
/// set for another tool changes nothing here.
const VAR: &str = "NEUMANN_SCRIPT_COMPLETE";

const BIN: &str = "neumann-script";

/// When the shell asks for completions: writes them to stdout and returns `Some`, with the error to
/// print if it could not. `None` for an ordinary command line.
pub(super) fn from_env(argv: &[OsString]) -> Option<Result<(), String>> {
    let asked = std::env::var_os(VAR).filter(|v| !v.is_empty() && v != "0")?;
    let words: Vec<String> = argv
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // bash says which word the cursor is on; the other shells complete the last one.
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(words.len().saturating_sub(1));
    let cwd = std::env::current_dir().ok();
    let done = CompleteEnv::with_factory(move || command(&words, index))
        .var(VAR)
        .try_complete(argv.iter().cloned(), cwd.as_deref());
    match done {
        Ok(_) => Some(Ok(())),
        Err(e) => Some(Err(format!(
            "completion for {}: {e}",
            asked.to_string_lossy()
        ))),
    }
}

/// What `completions SHELL` prints: the shell code that asks this binary (by its absolute path, so it
/// need not be on PATH) for completions of `neumann-script`.
pub(super) fn registration(shell: clap_complete::Shell) -> Result<String, String> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| format!("completions: no completion for the shell `{name}`"))?;
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| BIN.to_string());
    let mut buf = Vec::new();
    completer
        .write_registration(VAR, BIN, BIN, &exe, &mut buf)
        .map_err(|e| format!("completions {name}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The command clap_complete completes `words` against, the cursor on `words[index]`.
fn command(words: &[String], index: usize) -> clap::Command {
    let nodes = Nodes::from_words(&words[..index.min(words.len())]);
    match script_at(words, index) {
        // The cursor is in a script's arguments: only a stock script's NODE arguments complete; for the
        // rest, nothing does (the shell then offers file names), since an option there would reach the
        // script and be refused.
        Some(script) => {
            let bare = clap::Command::new(BIN)
                .disable_help_flag(true)
                .disable_version_flag(true)
                .disable_help_subcommand(true)
                .allow_external_subcommands(true);
            match stock_command(&script, nodes) {
                Some(sub) => bare.subcommand(sub),
                None => bare,
            }
        }
        None => Args::command()
            .add(SubcommandCandidates::new(scripts_here))
            .mut_subcommand("functions", |f| {
                f.mut_arg("module", |a| {
                    a.add(ArgValueCandidates::new(|| {
                        crate::script::modules::NAMES
                            .iter()
                            .map(|m| CompletionCandidate::new(*m))
                            .collect()
                    }))
                })
            })
            .mut_subcommand("audit", |a| {
                a.mut_subcommand("show", |s| {
                    s.mut_arg("run", |r| {
                        r.add(ArgValueCandidates::new(|| {
                            vec![CompletionCandidate::new("last")
                                .help(Some("the newest run `audit` lists".into()))]
                        }))
                    })
                })
            }),
    }
}

/// The script named on the command line before the cursor, if any: the first word that is neither an
/// option, an option's value nor a subcommand, as `cli::parse` reads it.
fn script_at(words: &[String], index: usize) -> Option<String> {
    let values = own_options(true);
    let cmd = Args::command();
    let mut i = 1;
    while i < index.min(words.len()) {
        let w = &words[i];
        let takes_next =
            values.contains(w) || (w == "--sim" && words.get(i + 1).is_some_and(|n| sim_value(n)));
        if takes_next {
            i += 2;
        } else if w.starts_with('-') {
            i += 1;
        } else if cmd.find_subcommand(w).is_some() {
            return None;
        } else {
            return Some(w.clone());
        }
    }
    None
}

/// The stock scripts, and the `.rhai` files and directories here, for the SCRIPT word.
fn scripts_here() -> Vec<CompletionCandidate> {
    let mut out: Vec<CompletionCandidate> = embedded::SCRIPTS
        .iter()
        .map(|(name, text)| CompletionCandidate::new(*name).help(Some(synopsis(text).into())))
        .collect();
    if let Ok(dir) = std::fs::read_dir(".") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if name.starts_with('.') {
                continue;
            }
            if is_dir {
                out.push(CompletionCandidate::new(format!("{name}/")));
            } else if name.ends_with(".rhai") && embedded::script(&name).is_none() {
                out.push(CompletionCandidate::new(name));
            }
        }
    }
    out
}

/// A stock script's first line without its comment marker: `rollback.rhai OLD_VERSION [NODE]...`.
fn synopsis(text: &'static str) -> &'static str {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches('/')
        .trim()
}

/// A stock script as a subcommand whose arguments are those of its synopsis, NODE ones completing to
/// the inventory's node ids.
fn stock_command(script: &str, nodes: Nodes) -> Option<clap::Command> {
    let (name, text) = embedded::SCRIPTS.iter().find(|(n, _)| *n == script)?;
    let mut cmd = clap::Command::new(*name)
        .disable_help_flag(true)
        .disable_version_flag(true);
    for (i, word) in synopsis(text).split_whitespace().skip(1).enumerate() {
        let many = word.ends_with("...");
        let name = word.trim_end_matches("...").trim_matches(['[', ']']);
        let mut arg = Arg::new(name)
            .value_name(name)
            .index(i + 1)
            .action(if many {
                ArgAction::Append
            } else {
                ArgAction::Set
            });
        if many {
            arg = arg.num_args(1..);
        }
        if name == "NODE" {
            let nodes = nodes.clone();
            arg = arg.add(ArgValueCandidates::new(move || nodes.candidates()));
        }
        cmd = cmd.arg(arg);
    }
    Some(cmd)
}

/// Where node ids come from: the inventory the command line names (`--cluster FILE`, else
/// `$NEUMANN_CLUSTER`, else `./neumann-cluster.toml`), or `--sim`'s nodes.
#[derive(Clone, Debug, PartialEq)]
enum Nodes {
    Inventory(Option<PathBuf>),
    Sim(usize),
}

impl Nodes {
    fn from_words(words: &[String]) -> Nodes {
        let mut found = Nodes::Inventory(None);
        let mut it = words.iter().peekable();
        while let Some(w) = it.next() {
            if w == "--cluster" {
                if let Some(path) = it.next() {
                    found = Nodes::Inventory(Some(expand_home(path)));
                }
            } else if let Some(path) = w.strip_prefix("--cluster=") {
                found = Nodes::Inventory(Some(expand_home(path)));
            } else if w == "--sim" {
                let spec = it.next_if(|n| sim_value(n)).cloned().unwrap_or_default();
                found = Nodes::Sim(sim_nodes(&spec));
            } else if let Some(spec) = w.strip_prefix("--sim=") {
                found = Nodes::Sim(sim_nodes(spec));
            }
        }
        found
    }

    fn candidates(&self) -> Vec<CompletionCandidate> {
        let ids: Vec<String> = match self {
            Nodes::Sim(n) => (1..=*n).map(|i| format!("node{i}")).collect(),
            // An inventory that cannot be read completes nothing: the command itself says why.
            Nodes::Inventory(path) => Inventory::locate(path.as_deref())
                .ok()
                .flatten()
                .map(|inv| inv.nodes.iter().map(|n| n.id.clone()).collect())
                .unwrap_or_default(),
        };
        ids.into_iter().map(CompletionCandidate::new).collect()
    }
}

/// The nodes of `--sim=N@VERSION` (3 when N is not given).
fn sim_nodes(spec: &str) -> usize {
    spec.split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// `~/x.toml` as the shell would expand it once the command runs: completion sees the word as typed.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_script_is_the_first_word_that_is_not_an_option_or_subcommand() {
        let w = words("neumann-script --cluster c.toml --set a=1 rollback.rhai 0.10.4 x");
        assert_eq!(script_at(&w, 6), Some("rollback.rhai".into()));
        // On the script word itself: not yet in its arguments.
        assert_eq!(script_at(&w, 5), None);
        assert_eq!(
            script_at(
                &words("neumann-script --sim 5@0.10.4 canary_upgrade.rhai x"),
                4
            ),
            Some("canary_upgrade.rhai".into())
        );
        assert_eq!(
            script_at(&words("neumann-script status --watch x"), 3),
            None
        );
    }

    #[test]
    fn node_ids_come_from_the_named_cluster_or_the_simulator() {
        assert_eq!(
            Nodes::from_words(&words("neumann-script --cluster c.toml x")),
            Nodes::Inventory(Some("c.toml".into()))
        );
        assert_eq!(
            Nodes::from_words(&words("neumann-script --sim 5@0.10.4 x")),
            Nodes::Sim(5)
        );
        assert_eq!(
            Nodes::from_words(&words("neumann-script --sim x")),
            Nodes::Sim(3)
        );
        assert_eq!(
            Nodes::Sim(2)
                .candidates()
                .iter()
                .map(|c| c.get_value().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            ["node1", "node2"]
        );
    }

    #[test]
    fn every_stock_script_has_a_synopsis_naming_it() {
        for (name, text) in embedded::SCRIPTS {
            assert!(
                synopsis(text).starts_with(name),
                "{name}: {}",
                synopsis(text)
            );
            // clap checks the command it builds from the synopsis (names, positions, `...`) here.
            stock_command(name, Nodes::Sim(3))
                .unwrap_or_else(|| panic!("{name}: no command"))
                .debug_assert();
        }
        let rollback = stock_command("rollback.rhai", Nodes::Sim(3)).unwrap();
        let args: Vec<_> = rollback
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        assert_eq!(args, ["OLD_VERSION", "NODE"]);
    }
}
