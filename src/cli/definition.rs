//! The command line as clap defines it: the options, the subcommands and their help. `mod.rs` turns
//! what clap parsed into the program's `Command`; nothing here checks or converts a value.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use semver::Version;

use crate::model::policy::parse_version;
use crate::transport::host::HostOp;

// Clap wraps help text to the terminal itself (`wrap_help`): a paragraph here is one line, and a line
// break ends a paragraph or a list item. Usage is not wrapped by clap, so its lines fit in 80 columns.
const USAGE: &str = "neumann-script [--cluster FILE | --sim[=N@VERSION]] [--set NAME=VALUE]...
                      [--yes | --rehearse] [--report FILE.html]
                      [--format text|json] SCRIPT [ARGS]...
       neumann-script [--cluster FILE | --sim[=N@VERSION]] -e CODE
       neumann-script [--cluster FILE | --sim[=N@VERSION]] repl
       neumann-script check [SCRIPT]...
       neumann-script functions [MODULE]
       neumann-script sim [--nodes N] [--version V] [--inventory FILE]
                          [--speed X] [--seed N] [--fault NODE:KIND]...
       neumann-script audit [list] [--all] [--forced] [--script NAME]
                            [--cluster FILE] [--journal FILE]
                            [--format text|json]
       neumann-script audit show RUN|last [--journal FILE] [--format text|json]
       neumann-script [--cluster FILE] status [--watch] [-o wide|json]
       neumann-script [--cluster FILE] pause|resume|abort [--reason TEXT]
       neumann-script completions bash|zsh|fish|elvish|powershell";

const AFTER_HELP: &str = "\
SCRIPT is a path; when no such file exists, the stock script of that name is used: rolling_upgrade.rhai VERSION, canary_upgrade.rhai VERSION [NODE], rollback.rhai OLD_VERSION [NODE]..., blue_green.rhai VERSION. Options go before SCRIPT: everything after it reaches the script as `args`.

The stock rolling upgrade (and the canary with proceed=true) takes --set max_unavailable=K, only=ID,ID, order_by=LABEL, soak_secs=N, pause_before=leader|each|none, prestage=true; the full list is at the top of each script (and `check SCRIPT` prints it), and docs/SCRIPTING.md has the details. A --set NAME the script does not take is refused (exit 2) before anything runs.

The cluster is --cluster FILE, else $NEUMANN_CLUSTER, else ./neumann-cluster.toml; --sim starts a simulated one in-process instead (default 3 nodes on 0.10.4).

Examples:
  # Upgrade a simulated 3-node cluster to 0.11.0 (five nodes: --sim 5@0.10.4)
  neumann-script --sim rolling_upgrade.rhai 0.11.0
  # A real cluster: rehearsed on a twin first, then it asks
  neumann-script --cluster prod.toml rolling_upgrade.rhai 0.11.0
  # And the run's timeline as a page
  neumann-script --sim --report run.html rolling_upgrade.rhai 0.11.0
  # A snippet; its last value is printed
  neumann-script --cluster prod.toml -e 'cluster::health()'
  neumann-script --cluster prod.toml --format json -e 'cluster::versions()'
  # Syntax, unknown functions (file:line) and the options a script takes
  neumann-script check my_runbook.rhai
  # An interactive session (help, Tab, Ctrl-D)
  neumann-script --sim repl
  # Every script function, or one module's
  neumann-script functions cluster
  # A simulator to drive from another terminal
  neumann-script sim --nodes 5 --inventory /tmp/c.toml
  # Past runs from the journal, newest first; the last run's steps and changes
  neumann-script audit
  neumann-script audit show last
  # The cluster and the run holding its lease, redrawn until the run ends
  neumann-script --cluster prod.toml status --watch
  # Pause the running rollout at its next safe point
  neumann-script --cluster prod.toml pause --reason 'p99 up'
  # Shell completion (subcommands, options, stock scripts, node ids)
  source <(neumann-script completions bash)

Exit codes: 0 done, 1 script error, 2 usage or inventory error, 3 stopped safely by a guard, 130/143/129 interrupted by Ctrl-C/SIGTERM/SIGHUP.";

const STATUS_AFTER_HELP: &str = "\
Examples:
  neumann-script --cluster prod.toml status
  neumann-script --cluster prod.toml status --watch -o wide
  neumann-script --cluster prod.toml --format json status | jq .run.paused
  neumann-script --cluster prod.toml status -w --format json | jq -c .run.step

Done and left: when the run's first argument is a version (rolling_upgrade.rhai 0.11.0), the members already on it are done and the rest are left, read from the cluster now. The steps are the run's own, carried on its lease. --watch ends when the run does, says how (from the journal, when the run kept one on this machine) and exits with the run's exit code, 1 when the journal here does not hold it; 130, 143 or 129 on a signal, 141 when its output pipe closes. See docs/CONTROL.md.";

/// The default simulated cluster.
pub const DEFAULT_SIM: &str = "3@0.10.4";

#[derive(Parser, Debug)]
#[command(
    name = "neumann-script",
    version = crate::journal::VERSION_LINE,
    about = "Run, read and change the upgrade runbooks of a Neumann cluster, written in Rhai",
    override_usage = USAGE,
    after_help = AFTER_HELP,
    allow_external_subcommands = true,
    max_term_width = 110
)]
pub(super) struct Args {
    /// Inventory file describing the cluster (TOML) [default: $NEUMANN_CLUSTER, else ./neumann-cluster.toml]
    #[arg(long, value_name = "FILE", conflicts_with = "sim")]
    pub(super) cluster: Option<PathBuf>,

    /// Start the built-in simulated cluster and use it (N nodes on VERSION; default 3@0.10.4)
    #[arg(long, value_name = "N@VERSION", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_SIM)]
    pub(super) sim: Option<String>,

    /// Time compression for --sim: simulated seconds per real second [default: 1]
    #[arg(long, value_name = "X")]
    pub(super) sim_speed: Option<f64>,

    /// Seed --sim's randomness (election timeouts, latencies) [default: drawn, and printed at start]: the same
    /// seed and the same actions at the same simulated moments give the same /sim/events, at any --sim-speed
    #[arg(long, value_name = "N")]
    pub(super) sim_seed: Option<u64>,

    /// With --sim: also start a green simulated cluster on VERSION, named in the blue one's [blue_green], for
    /// blue_green.rhai [default for blue_green.rhai: its VERSION argument]
    #[arg(long = "sim-green", value_name = "VERSION")]
    pub(super) sim_green: Option<String>,

    /// With --sim: nodes running this version misbehave like a broken release (repeatable)
    #[arg(long = "sim-bad-version", value_name = "V")]
    pub(super) sim_bad_versions: Vec<String>,

    /// Set a script option read with `option(NAME, default)` (repeatable); a NAME the script does not take
    /// is refused (exit 2) before anything runs
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(super) set: Vec<String>,

    /// Answer yes to every confirmation (for automation)
    #[arg(long)]
    pub(super) yes: bool,

    /// Run the script against a simulated twin of the cluster instead, and print the plan: every change in
    /// order, the guards that fired, the predicted duration and final state. Only reads reach the cluster
    #[arg(long, conflicts_with = "yes")]
    pub(super) rehearse: bool,

    /// How to print results
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub(super) format: FormatArg,

    /// Append an audit record of every mutating call to FILE, a regular file [default:
    /// ~/.local/state/neumann-script/journal.jsonl; none for --sim]
    #[arg(long, value_name = "FILE")]
    pub(super) journal: Option<PathBuf>,

    /// POST each event of the run (start, steps, gates, pauses, safe stops, the result) as JSON to URL, with a
    /// one-line `text` a Slack incoming webhook shows (repeatable; adds to the inventory's [notify] webhooks).
    /// A receiver that is down never blocks or fails the run
    #[arg(long = "notify", value_name = "URL")]
    pub(super) notify: Vec<String>,

    /// Post only these kinds of event to the webhooks (repeatable, or a comma list; replaces the
    /// inventory's [notify] notify_on for this run) [default: every kind]. `script`: a script's own
    /// journal::event kinds
    #[arg(
        long = "notify-on",
        value_name = "KIND",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(crate::notify::KINDS)
    )]
    pub(super) notify_on: Vec<String>,
    /// Write the run's timeline to FILE as one self-contained HTML page, whatever happens (with --rehearse,
    /// the predicted timeline); an existing FILE must be a regular file holding an earlier report
    #[arg(long, value_name = "FILE.html")]
    pub(super) report: Option<PathBuf>,

    /// Take over the cluster's run lease from a run whose process is known to be gone (journaled)
    #[arg(long)]
    pub(super) steal_lease: bool,

    /// Evaluate CODE instead of a script; the value of its last expression is printed
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    pub(super) eval: Option<String>,

    #[command(subcommand)]
    pub(super) command: Option<Sub>,
}

/// The top-level options as typed on a command line (`--cluster`, `-e`), read from clap's own definition
/// so a new option cannot be forgotten where the command line is read ahead of clap; `values_only` keeps
/// those that take a value as the next argument.
pub(super) fn own_options(values_only: bool) -> Vec<String> {
    let cmd = <Args as clap::CommandFactory>::command();
    cmd.get_arguments()
        .filter(|a| !values_only || (a.get_action().takes_values() && a.get_id() != "sim"))
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|c| format!("-{c}"));
            long.into_iter().chain(short)
        })
        .collect()
}

/// clap cannot tell `--sim 5@0.10.4` (a value) from `--sim rolling_upgrade.rhai` (the script): a word
/// shaped like N@VERSION or N is the value.
pub(super) fn sim_value(word: &str) -> bool {
    let n = word.split('@').next().unwrap_or_default();
    n.chars().all(|c| c.is_ascii_digit()) && (word.contains('@') || !n.is_empty())
}

/// `--cluster` and `--format` after a subcommand that reads a cluster, as people type them
/// (`status --cluster prod.toml`); given there, they win over the same options before it.
#[derive(clap::Args, Debug)]
pub(super) struct After {
    /// Inventory file describing the cluster (TOML); may also come before the subcommand
    #[arg(long = "cluster", id = "after_cluster", value_name = "FILE")]
    pub(super) cluster: Option<PathBuf>,
    /// How to print results; may also come before the subcommand
    #[arg(
        long = "format",
        id = "after_format",
        value_name = "FORMAT",
        value_enum
    )]
    pub(super) format: Option<FormatArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum FormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub(super) enum Sub {
    /// Compile scripts without running them: syntax errors, unknown variables and unknown functions, with
    /// file:line, and the options each takes. With no SCRIPT, checks the stock scripts and stdlib.
    Check {
        #[arg(value_name = "SCRIPT")]
        scripts: Vec<PathBuf>,
    },
    /// List every script function with its signature and what it does; with MODULE (cluster, node, raft,
    /// metrics, backup, journal, version), only that module's
    Functions {
        /// A module: `cluster` or `cluster::`
        #[arg(value_name = "MODULE")]
        module: Option<String>,
    },
    /// An interactive session on the cluster (--cluster FILE or --sim): the same API as scripts, with
    /// completion, multi-line input, history and Ctrl-C to cancel a running entry
    Repl {
        #[command(flatten)]
        after: After,
    },
    /// Write Rhai definition files (.d.rhai) for the script API into DIR, for editors with Rhai support
    Definitions {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the shell code that completes neumann-script (subcommands, options, stock scripts, node ids):
    /// `source <(neumann-script completions bash)` in ~/.bashrc; at each Tab the shell asks this binary
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Run the simulated cluster in the foreground and write an inventory for it, so another terminal can
    /// drive it with --cluster FILE
    Sim {
        /// Number of nodes
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// The version every node runs at start
        #[arg(long, default_value = "0.10.4")]
        version: String,
        /// Where to write the inventory (replaced only if it is a simulator's; a new file's mode follows the
        /// umask)
        #[arg(long, value_name = "FILE", default_value = crate::inventory::DEFAULT_FILE)]
        inventory: PathBuf,
        /// Time compression: simulated seconds per real second
        #[arg(long, value_name = "X", default_value_t = 1.0)]
        speed: f64,
        /// Nodes running this version misbehave like a broken release (repeatable)
        #[arg(long = "bad-version", value_name = "V")]
        bad_versions: Vec<String>,
        /// Inject a fault at start, e.g. node2:crash (repeatable; kinds: crash, hang, partition, slow_catchup,
        /// fail_install, flaky, wipe, restore_backup, unsynced_disk; a wipe or a restored backup is found
        /// at the node's next start)
        #[arg(long = "fault", value_name = "NODE:KIND")]
        faults: Vec<String>,
        /// Seed the simulator's randomness (election timeouts, latencies) [default: drawn, and printed at
        /// start]: the same seed and the same commands at the same simulated moments give the same
        /// /sim/events, at any --speed
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        #[command(subcommand)]
        ctl: Option<SimSub>,
    },
    /// Past runs from the journal, newest first (id, start, who, cluster, script and arguments, result,
    /// duration); `audit show RUN|last` prints one run's steps with durations and every change it made
    Audit {
        #[command(subcommand)]
        what: Option<AuditSub>,
        /// List read-only sessions too (snippets and REPL sessions that changed nothing)
        #[arg(long, global = true)]
        all: bool,
        /// List only runs that forced a call past an interlock (#{force: ...})
        #[arg(long, global = true)]
        forced: bool,
        /// List only runs of this script (a stock script's name, or a path as it was given)
        #[arg(long, value_name = "NAME", global = true)]
        script: Option<String>,
        /// List only runs against this inventory (compared by its absolute path); may also come before
        /// `audit`
        #[arg(
            long = "cluster",
            id = "audit_cluster",
            value_name = "FILE",
            global = true
        )]
        cluster: Option<PathBuf>,
        /// The journal to read [default: ~/.local/state/neumann-script/journal.jsonl]; may also come
        /// before `audit`
        #[arg(
            long = "journal",
            id = "audit_journal",
            value_name = "FILE",
            global = true
        )]
        journal: Option<PathBuf>,
        /// How to print; may also come before `audit`
        #[arg(
            long = "format",
            id = "audit_format",
            value_name = "FORMAT",
            value_enum,
            global = true
        )]
        format: Option<FormatArg>,
    },
    /// The cluster at a glance (members, roles, versions, health, leader and term) and the run holding its
    /// lease: who, where, script and arguments, since when, its step and the steps before it, paused or
    /// not, nodes done and left. Exit 0 whether or not a run is in progress. With --watch, redrawn until the
    /// run ends, then exits with the run's own exit code (1 when this journal does not hold its end)
    #[command(after_help = STATUS_AFTER_HELP)]
    Status {
        /// Redraw every second until the run holding the lease ends (waiting for one to start if none
        /// holds it); exits 0 when it ends and says how. With --format json, one JSON document per line
        /// for each change
        #[arg(short = 'w', long)]
        watch: bool,
        /// `wide` adds each node's commit and applied index, address and labels; `json` is --format json
        #[arg(short = 'o', long = "output", value_name = "FORMAT", value_enum)]
        output: Option<OutputArg>,
        #[command(flatten)]
        after: After,
    },
    /// Ask the run in progress to pause at its next safe point (a step boundary, checkpoint(), gate(), or
    /// within a second of its clock during a wait: sleep, a soak, a canary watch; never between a node's
    /// stop and its start). It keeps its lease and waits for `resume`. Works from any
    /// machine that can reach the cluster
    #[command(
        after_help = "Example:\n  neumann-script --cluster prod.toml pause --reason 'p99 latency on the dashboard'\n\nExit codes: 0 asked (the run acts at its next safe point; `status` shows when it is paused), 2 no run in progress on this cluster or no such cluster, 1 the cluster could not be reached. See docs/CONTROL.md."
    )]
    Pause {
        /// Why: shown by the paused run, by `status`, and journaled
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        #[command(flatten)]
        after: After,
    },
    /// Let a paused run (by `pause` or at a gate()) go on; a resume with nothing paused is dropped by the run
    #[command(
        after_help = "Example:\n  neumann-script --cluster prod.toml resume\n\nExit codes: 0 asked, 2 no run in progress on this cluster or no such cluster, 1 the cluster could not be reached. See docs/CONTROL.md."
    )]
    Resume {
        /// Why: shown by the run and journaled
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        #[command(flatten)]
        after: After,
    },
    /// End the run in progress safely at its next safe point: a node mid-procedure is finished first; the
    /// run exits 3 with its state report, and running it again goes on where it stopped
    #[command(
        after_help = "Example:\n  neumann-script --cluster prod.toml abort --reason 'change freeze'\n\nExit codes: 0 asked (the run exits 3 at its next safe point), 2 no run in progress on this cluster or no such cluster, 1 the cluster could not be reached. See docs/CONTROL.md."
    )]
    Abort {
        /// Why: shown by the run in its stop message and journaled
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        #[command(flatten)]
        after: After,
    },
    #[command(external_subcommand)]
    Script(Vec<String>),
}

/// `status -o`: kubectl's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum OutputArg {
    Text,
    Wide,
    Json,
}

#[derive(Subcommand, Debug)]
pub(super) enum AuditSub {
    /// The runs, newest first (the default)
    List,
    /// One run: its steps with durations, every mutating call, its result. RUN is a run id or a unique
    /// start of one; `last` is the newest run `audit` lists
    Show {
        /// A run id, a start of one that names a single run, or `last`
        #[arg(value_name = "RUN")]
        run: String,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum SimSub {
    /// Run a host-side command on a simulated node, as a node's host would: what `systemctl` and `cargo
    /// install` do in simulation. Prints the command's output and exits with its status, so inventory
    /// templates (over SSH, say) can drive a simulator.
    Ctl {
        /// The simulator's control address (the inventory's [sim] control)
        control: String,
        /// The node
        node: String,
        /// stop, start, restart, install, stage or activate
        #[arg(value_enum)]
        action: CtlAction,
        /// The version, for install, stage and activate
        version: Option<String>,
    },
}

/// What `sim ctl` does on the node: `HostOp` once given its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum CtlAction {
    Stop,
    Start,
    Restart,
    Install,
    Stage,
    Activate,
}

impl CtlAction {
    fn name(self) -> &'static str {
        match self {
            CtlAction::Stop => "stop",
            CtlAction::Start => "start",
            CtlAction::Restart => "restart",
            CtlAction::Install => "install",
            CtlAction::Stage => "stage",
            CtlAction::Activate => "activate",
        }
    }

    /// The host operation, with the version the last three need and the first three refuse.
    pub(super) fn op(self, version: Option<String>) -> Result<HostOp, String> {
        let name = self.name();
        let given = || -> Result<Version, String> {
            let v = version
                .as_deref()
                .ok_or_else(|| format!("sim ctl {name} needs a VERSION"))?;
            parse_version(v).map_err(|e| format!("sim ctl {name}: {e}"))
        };
        match self {
            CtlAction::Stop | CtlAction::Start | CtlAction::Restart if version.is_some() => {
                Err(format!(
                    "sim ctl {name} takes no version (got {})",
                    version.as_deref().unwrap_or_default()
                ))
            }
            CtlAction::Stop => Ok(HostOp::Stop),
            CtlAction::Start => Ok(HostOp::Start),
            CtlAction::Restart => Ok(HostOp::Restart),
            CtlAction::Install => given().map(HostOp::Install),
            CtlAction::Stage => given().map(HostOp::Stage),
            CtlAction::Activate => given().map(HostOp::Activate),
        }
    }
}
