//! The command line. clap lives here and nowhere else: arguments are parsed, checked and
//! turned into a `Command` before anything else sees them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use semver::Version;

pub use crate::audit::AuditOptions;
use crate::lease::Action;
use crate::model::policy::parse_version;
use crate::output::Format;
pub use crate::session::{RunOptions, Target};
use crate::sim::FaultKind;
use crate::transport::host::HostOp;

const USAGE: &str = "neumann-script [--cluster FILE | --sim[=N@VERSION]] [--set NAME=VALUE]... [--yes | --rehearse] [--report FILE.html] [--format text|json] SCRIPT [ARGS]...
       neumann-script [--cluster FILE | --sim[=N@VERSION]] -e CODE
       neumann-script [--cluster FILE | --sim[=N@VERSION]] repl
       neumann-script check [SCRIPT]...
       neumann-script functions
       neumann-script sim [--nodes N] [--version V] [--inventory FILE] [--speed X]
       neumann-script audit [list] [--all] [--journal FILE] [--format text|json]
       neumann-script audit show RUN|last [--journal FILE] [--format text|json]
       neumann-script [--cluster FILE] [--format text|json] status
       neumann-script [--cluster FILE] pause|resume|abort [--reason TEXT]";

const AFTER_HELP: &str = "\
SCRIPT is a path; when no such file exists, the stock script of that name is used: rolling_upgrade.rhai VERSION,
canary_upgrade.rhai VERSION [NODE], rollback.rhai OLD_VERSION [NODE]..., blue_green.rhai VERSION.
Options go before SCRIPT: everything after it reaches the script as `args`.
The stock rolling upgrade (and the canary with proceed=true) takes --set max_unavailable=K, only=ID,ID,
order_by=LABEL, soak_secs=N, pause_before=leader|each|none, prestage=true; the full list is at the top of
each script (and `check SCRIPT` prints it), and docs/SCRIPTING.md has the details. A --set NAME the script
does not take is refused (exit 2) before anything runs.
The cluster is --cluster FILE, else $NEUMANN_CLUSTER, else ./neumann-cluster.toml; --sim starts a simulated
one in-process instead (default 3 nodes on 0.10.4).

Examples:
  neumann-script --sim rolling_upgrade.rhai 0.11.0          upgrade a simulated 3-node cluster to 0.11.0
  neumann-script --sim 5@0.10.4 rolling_upgrade.rhai 0.11.0  the same with 5 nodes
  neumann-script --cluster prod.toml rolling_upgrade.rhai 0.11.0
  neumann-script --sim --report run.html rolling_upgrade.rhai 0.11.0  and its timeline as a page
  neumann-script --cluster prod.toml -e 'cluster::health()'
  neumann-script --cluster prod.toml --format json -e 'cluster::versions()'
  neumann-script check my_runbook.rhai                       syntax, unknown functions (file:line), its options
  neumann-script --sim repl                                  an interactive session (help, Tab, Ctrl-D)
  neumann-script functions                                   every script function and what it does
  neumann-script sim --nodes 5 --inventory /tmp/c.toml       a simulator to drive from another terminal
  neumann-script audit                                       past runs from the journal, newest first
  neumann-script audit show last                             the last run's steps and every change it made
  neumann-script --cluster prod.toml status                  the cluster and the run holding its lease
  neumann-script --cluster prod.toml pause --reason 'p99 up'  pause the running rollout at its next safe point

Exit codes: 0 done, 1 script error, 2 usage or inventory error, 3 stopped safely by a guard, 130/143/129
interrupted by Ctrl-C/SIGTERM/SIGHUP.";

/// The default simulated cluster.
pub const DEFAULT_SIM: &str = "3@0.10.4";

#[derive(Parser, Debug)]
#[command(
    name = "neumann-script",
    version,
    about = "Run, read and change the upgrade runbooks of a Neumann cluster, written in Rhai",
    override_usage = USAGE,
    after_help = AFTER_HELP,
    allow_external_subcommands = true,
    max_term_width = 110
)]
struct Args {
    /// Inventory file describing the cluster (TOML) [default: $NEUMANN_CLUSTER, else ./neumann-cluster.toml]
    #[arg(long, value_name = "FILE", conflicts_with = "sim")]
    cluster: Option<PathBuf>,

    /// Start the built-in simulated cluster and use it (N nodes on VERSION; default 3@0.10.4)
    #[arg(long, value_name = "N@VERSION", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_SIM)]
    sim: Option<String>,

    /// Time compression for --sim: simulated seconds per real second [default: 1]
    #[arg(long, value_name = "X")]
    sim_speed: Option<f64>,

    /// With --sim: also start a green simulated cluster on VERSION, named in the blue one's [blue_green], for
    /// blue_green.rhai [default for blue_green.rhai: its VERSION argument]
    #[arg(long = "sim-green", value_name = "VERSION")]
    sim_green: Option<String>,

    /// With --sim: nodes running this version misbehave like a broken release (repeatable)
    #[arg(long = "sim-bad-version", value_name = "V")]
    sim_bad_versions: Vec<String>,

    /// Set a script option read with `option(NAME, default)` (repeatable); a NAME the script does not take
    /// is refused (exit 2) before anything runs
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,

    /// Answer yes to every confirmation (for automation)
    #[arg(long)]
    yes: bool,

    /// Run the script against a simulated twin of the cluster instead, and print the plan: every change in
    /// order, the guards that fired, the predicted duration and final state. Only reads reach the cluster
    #[arg(long, conflicts_with = "yes")]
    rehearse: bool,

    /// How to print results
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,

    /// Append an audit record of every mutating call to FILE, a regular file [default:
    /// ~/.local/state/neumann-script/journal.jsonl; none for --sim]
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,

    /// POST each event of the run (start, steps, gates, pauses, safe stops, the result) as JSON to URL, with a
    /// one-line `text` a Slack incoming webhook shows (repeatable; adds to the inventory's [notify] webhooks).
    /// A receiver that is down never blocks or fails the run
    #[arg(long = "notify", value_name = "URL")]
    notify: Vec<String>,
    /// Write the run's timeline to FILE as one self-contained HTML page, whatever happens (with --rehearse,
    /// the predicted timeline); an existing FILE must be a regular file holding an earlier report
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,

    /// Take over the cluster's run lease from a run whose process is known to be gone (journaled)
    #[arg(long)]
    steal_lease: bool,

    /// Evaluate CODE instead of a script; the value of its last expression is printed
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    eval: Option<String>,

    #[command(subcommand)]
    command: Option<Sub>,
}

/// `--cluster` and `--format` after a subcommand that reads a cluster, as people type them
/// (`status --cluster prod.toml`); given there, they win over the same options before it.
#[derive(clap::Args, Debug)]
struct After {
    /// Inventory file describing the cluster (TOML); may also come before the subcommand
    #[arg(long = "cluster", id = "after_cluster", value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// How to print results; may also come before the subcommand
    #[arg(
        long = "format",
        id = "after_format",
        value_name = "FORMAT",
        value_enum
    )]
    format: Option<FormatArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Compile scripts without running them: syntax errors, unknown variables and unknown functions, with
    /// file:line, and the options each takes. With no SCRIPT, checks the stock scripts and stdlib.
    Check {
        #[arg(value_name = "SCRIPT")]
        scripts: Vec<PathBuf>,
    },
    /// List every script function with its signature and what it does
    Functions,
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
    /// Print shell completions for the command line
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
        /// Seed the simulator's randomness (election timeouts, latencies): the same seed and the same
        /// commands give the same event trace
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
    /// lease: who, where, script and arguments, since when, its step, paused or not, nodes done and left.
    /// Exit 0 whether or not a run is in progress
    #[command(
        after_help = "Examples:\n  neumann-script --cluster prod.toml status\n  neumann-script --cluster prod.toml --format json status | jq .run.paused\n\nDone and left: when the run's first argument is a version (rolling_upgrade.rhai 0.11.0), the members already on it are done and the rest are left, read from the cluster now. See docs/CONTROL.md."
    )]
    Status {
        #[command(flatten)]
        after: After,
    },
    /// Ask the run in progress to pause at its next safe point (a step boundary, checkpoint() or gate(),
    /// never between a node's stop and its start). It keeps its lease and waits for `resume`. Works from any
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

#[derive(Subcommand, Debug)]
enum AuditSub {
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
enum SimSub {
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
enum CtlAction {
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
    fn op(self, version: Option<String>) -> Result<HostOp, String> {
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

/// The simulator's foreground settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    pub nodes: usize,
    pub version: Version,
    pub inventory: PathBuf,
    pub speed: f64,
    pub bad_versions: Vec<Version>,
    /// Faults to inject at start: (node, kind).
    pub faults: Vec<(String, FaultKind)>,
    pub seed: Option<u64>,
}

/// What the program was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run {
        run: RunOptions,
        script: String,
        args: Vec<String>,
    },
    Eval {
        run: RunOptions,
        code: String,
    },
    Check {
        scripts: Vec<PathBuf>,
    },
    Functions,
    Repl {
        run: RunOptions,
    },
    Definitions {
        dir: PathBuf,
    },
    /// `completions SHELL`: the script to print, written here, where clap is.
    Completions {
        script: String,
    },
    Sim(SimOptions),
    SimCtl {
        control: String,
        node: String,
        op: HostOp,
    },
    Audit(AuditOptions),
    /// `status`: the cluster and the run holding its lease.
    Status {
        run: RunOptions,
    },
    /// `pause`, `resume` or `abort`: a request to the run holding the lease.
    Request {
        run: RunOptions,
        action: Action,
        reason: String,
    },
}

/// The top-level options as typed on a command line (`--cluster`, `-e`), read from clap's own definition
/// so a new option cannot be forgotten here; `values_only` keeps those that take a value as the next
/// argument.
fn own_options(values_only: bool) -> Vec<String> {
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

/// clap cannot tell `--sim 5@0.10.4` (a value) from `--sim rolling_upgrade.rhai` (the script); a token
/// shaped like N@VERSION or N is taken as the value.
fn join_sim_value(argv: Vec<String>) -> Vec<String> {
    let value_options = own_options(true);
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter().peekable();
    if let Some(bin) = it.next() {
        out.push(bin);
    }
    while let Some(tok) = it.next() {
        if tok == "--sim" {
            let looks_like_value = it.peek().is_some_and(|next| {
                let n = next.split('@').next().unwrap_or_default();
                n.chars().all(|c| c.is_ascii_digit()) && (next.contains('@') || !n.is_empty())
            });
            if looks_like_value {
                let value = it.next().unwrap_or_default();
                out.push(format!("--sim={value}"));
                continue;
            }
            out.push(tok);
        } else if value_options.contains(&tok) {
            out.push(tok);
            if let Some(v) = it.next() {
                out.push(v);
            }
        } else if tok.starts_with('-') {
            out.push(tok);
        } else {
            // The subcommand or script: the rest is theirs.
            out.push(tok);
            out.extend(it);
            break;
        }
    }
    out
}

fn parse_sim_spec(spec: &str) -> Result<(usize, Version), String> {
    let (n, v) = spec.split_once('@').unwrap_or((spec, ""));
    let nodes = if n.is_empty() {
        3
    } else {
        n.parse::<usize>()
            .map_err(|_| format!("--sim={spec}: expected N@VERSION such as 5@0.10.4"))?
    };
    let version = if v.is_empty() {
        Version::new(0, 10, 4)
    } else {
        parse_version(v).map_err(|e| format!("--sim={spec}: {e}"))?
    };
    check_nodes(nodes).map_err(|e| format!("--sim={spec}: {e}"))?;
    Ok((nodes, version))
}

fn check_nodes(n: usize) -> Result<(), String> {
    if (1..=1000).contains(&n) {
        Ok(())
    } else {
        Err(format!("a simulated cluster has 1 to 1000 nodes, not {n}"))
    }
}

fn check_speed(x: f64, flag: &str) -> Result<(), String> {
    if x.is_finite() && x > 0.0 && x <= 1000.0 {
        Ok(())
    } else {
        Err(format!(
            "{flag} must be a number above 0 and at most 1000, not {x}"
        ))
    }
}

/// `status`, `pause`, `resume` and `abort` address a cluster another process runs against: a simulator
/// started for this command would be a new, empty one.
fn control_target(run: RunOptions, what: &str) -> Result<RunOptions, (String, i32)> {
    if matches!(run.target, Target::Sim { .. }) {
        return Err((
            format!(
                "error: {what} reads the cluster another run works on: name it with --cluster FILE \
                 (--sim would start a new simulated cluster, where no run is in progress)\n\n\
                 For more information, try '--help'.\n"
            ),
            2,
        ));
    }
    Ok(run)
}

fn format_of(f: FormatArg) -> Format {
    match f {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
    }
}

/// Shell completions for the command line.
fn completions(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Args as clap::CommandFactory>::command(),
        "neumann-script",
        &mut out,
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the command line. `Err` carries what to print and the exit code (0 for --help and --version).
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Command, (String, i32)> {
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args = Args::try_parse_from(join_sim_value(argv)).map_err(|e| {
        let text = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            e.render().ansi().to_string()
        } else {
            e.render().to_string()
        };
        (text, e.exit_code())
    })?;
    let usage = |m: String| {
        (
            format!("error: {m}\n\nFor more information, try '--help'.\n"),
            2,
        )
    };

    let mut options = BTreeMap::new();
    for pair in &args.set {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("--set {pair}: expected NAME=VALUE")))?;
        if k.trim().is_empty() {
            return Err(usage(format!("--set {pair}: the NAME is empty")));
        }
        options.insert(k.trim().to_string(), v.to_string());
    }
    let after = match &args.command {
        Some(
            Sub::Status { after }
            | Sub::Repl { after }
            | Sub::Pause { after, .. }
            | Sub::Resume { after, .. }
            | Sub::Abort { after, .. },
        ) => Some(after),
        _ => None,
    };
    let cluster = after
        .and_then(|a| a.cluster.clone())
        .or_else(|| args.cluster.clone());
    let format = after.and_then(|a| a.format).unwrap_or(args.format);
    // Said here: clap's `conflicts_with` does not reach from a subcommand's `--cluster` to `--sim`.
    if after.is_some_and(|a| a.cluster.is_some()) && args.sim.is_some() {
        return Err(usage(
            "--cluster FILE and --sim name two different clusters: give one".into(),
        ));
    }
    // Said here rather than with clap's `requires`, which names only the missing `--sim`.
    if args.sim.is_none() {
        if args.sim_speed.is_some() {
            return Err(usage(
                "--sim-speed applies to the simulator (--sim) only: a real cluster runs in real time".into(),
            ));
        }
        if args.sim_green.is_some() {
            return Err(usage(
                "--sim-green applies to the simulator (--sim) only: name a real green cluster in the inventory's [blue_green]".into(),
            ));
        }
        if !args.sim_bad_versions.is_empty() {
            return Err(usage(
                "--sim-bad-version applies to the simulator (--sim) only".into(),
            ));
        }
    }
    let notify = args
        .notify
        .iter()
        .map(|u| {
            crate::notify::check_url(u)
                .map(|_| u.clone())
                .map_err(|e| usage(format!("--notify: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sim_speed = args.sim_speed.unwrap_or(1.0);
    check_speed(sim_speed, "--sim-speed").map_err(usage)?;
    let target = match &args.sim {
        Some(spec) => {
            let (nodes, version) = parse_sim_spec(spec).map_err(usage)?;
            let bad_versions = args
                .sim_bad_versions
                .iter()
                .map(|v| parse_version(v).map_err(|e| usage(format!("--sim-bad-version: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let green = args
                .sim_green
                .as_deref()
                .map(|v| parse_version(v).map_err(|e| usage(format!("--sim-green: {e}"))))
                .transpose()?;
            Target::Sim {
                nodes,
                version,
                speed: sim_speed,
                bad_versions,
                green,
            }
        }
        None => Target::Inventory(cluster),
    };
    let run = RunOptions {
        target,
        options,
        yes: args.yes,
        journal: args.journal.clone(),
        rehearse: args.rehearse,
        steal_lease: args.steal_lease,
        notify,
        report: args.report.clone(),
        format: format_of(format),
    };

    let runs_something = matches!(
        (&args.command, &args.eval),
        (None, Some(_)) | (Some(Sub::Script(_)), None)
    );
    if args.report.is_some() && !runs_something {
        return Err(usage(
            "--report applies to a script run or -e CODE: it draws one run's timeline".into(),
        ));
    }
    match (args.command, args.eval) {
        (Some(_), Some(_)) => Err(usage(
            "-e CODE runs a snippet: it cannot be combined with a script or subcommand".into(),
        )),
        (None, Some(code)) => Ok(Command::Eval { run, code }),
        (None, None) => Err(usage(
            "nothing to run: give a SCRIPT, -e CODE, or a subcommand (see --help)".into(),
        )),
        (Some(Sub::Script(mut words)), None) => {
            let script = words.remove(0);
            let ours = own_options(false);
            if let Some(bad) = words.iter().find(|w| {
                ours.iter()
                    .any(|o| *w == o || w.starts_with(&format!("{o}=")))
            }) {
                return Err(usage(format!(
                    "`{bad}` comes after the script name, so it would reach the script as an argument: put neumann-script's options before SCRIPT"
                )));
            }
            Ok(Command::Run {
                run,
                script,
                args: words,
            })
        }
        (Some(Sub::Check { scripts }), None) => Ok(Command::Check { scripts }),
        (
            Some(Sub::Audit {
                what,
                all,
                journal,
                format,
            }),
            None,
        ) => Ok(Command::Audit(AuditOptions {
            journal: journal.or(run.journal),
            format: format.map_or(run.format, format_of),
            all,
            show: match what {
                Some(AuditSub::Show { run }) => Some(run),
                Some(AuditSub::List) | None => None,
            },
        })),
        (Some(Sub::Functions), None) => Ok(Command::Functions),
        (Some(Sub::Status { .. }), None) => Ok(Command::Status {
            run: control_target(run, "status")?,
        }),
        (Some(sub @ (Sub::Pause { .. } | Sub::Resume { .. } | Sub::Abort { .. })), None) => {
            let (action, reason) = match sub {
                Sub::Pause { reason, .. } => (Action::Pause, reason),
                Sub::Resume { reason, .. } => (Action::Resume, reason),
                Sub::Abort { reason, .. } => (Action::Abort, reason),
                _ => unreachable!("matched above"),
            };
            Ok(Command::Request {
                run: control_target(run, action.as_str())?,
                action,
                reason,
            })
        }
        (Some(Sub::Repl { .. }), None) => Ok(Command::Repl { run }),
        (Some(Sub::Definitions { dir }), None) => Ok(Command::Definitions { dir }),
        (Some(Sub::Completions { shell }), None) => Ok(Command::Completions {
            script: completions(shell),
        }),
        (
            Some(Sub::Sim {
                ctl:
                    Some(SimSub::Ctl {
                        control,
                        node,
                        action,
                        version,
                    }),
                ..
            }),
            None,
        ) => Ok(Command::SimCtl {
            control,
            node,
            op: action.op(version).map_err(usage)?,
        }),
        (
            Some(Sub::Sim {
                nodes,
                version,
                inventory,
                speed,
                bad_versions,
                faults,
                seed,
                ctl: None,
            }),
            None,
        ) => {
            check_nodes(nodes).map_err(|e| usage(format!("--nodes: {e}")))?;
            check_speed(speed, "--speed").map_err(usage)?;
            let version = parse_version(&version).map_err(|e| usage(format!("--version: {e}")))?;
            let bad_versions = bad_versions
                .iter()
                .map(|v| parse_version(v).map_err(|e| usage(format!("--bad-version: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let faults = faults
                .iter()
                .map(|f| {
                    let (node, kind) = f.split_once(':').ok_or_else(|| {
                        usage(format!(
                            "--fault {f}: expected NODE:KIND such as node2:crash"
                        ))
                    })?;
                    let kind = kind
                        .parse::<FaultKind>()
                        .map_err(|e| usage(format!("--fault {f}: {e}")))?;
                    Ok((node.to_string(), kind))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Command::Sim(SimOptions {
                nodes,
                version,
                inventory,
                speed,
                bad_versions,
                faults,
                seed,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, (String, i32)> {
        parse(
            std::iter::once("neumann-script")
                .chain(line.split_whitespace())
                .map(OsString::from),
        )
    }

    fn run(line: &str) -> (RunOptions, String, Vec<String>) {
        match p(line).unwrap() {
            Command::Run { run, script, args } => (run, script, args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sim_alone_then_script() {
        let (r, script, args) = run("--sim rolling_upgrade.rhai 0.11.0");
        assert_eq!(
            r.target,
            Target::Sim {
                nodes: 3,
                version: Version::new(0, 10, 4),
                speed: 1.0,
                bad_versions: vec![],
                green: None,
            }
        );
        assert_eq!(script, "rolling_upgrade.rhai");
        assert_eq!(args, vec!["0.11.0"]);
    }

    #[test]
    fn sim_with_a_size_and_version() {
        let (r, ..) = run("--sim 5@0.9.2 --sim-speed 20 rolling_upgrade.rhai 0.10.0");
        assert_eq!(
            r.target,
            Target::Sim {
                nodes: 5,
                version: Version::new(0, 9, 2),
                speed: 20.0,
                bad_versions: vec![],
                green: None,
            }
        );
        let (r, ..) = run("--sim=11 x.rhai");
        assert!(matches!(r.target, Target::Sim { nodes: 11, .. }));
    }

    #[test]
    fn options_sets_and_format() {
        let (r, script, args) =
            run("--cluster c.toml --set a=1 --set b=x=y --yes --format json s.rhai p q");
        assert_eq!(r.target, Target::Inventory(Some("c.toml".into())));
        assert_eq!(r.options.get("b").map(String::as_str), Some("x=y"));
        assert!(r.yes);
        assert_eq!(r.format, Format::Json);
        assert_eq!((script.as_str(), args.len()), ("s.rhai", 2));
    }

    #[test]
    fn eval_and_subcommands() {
        assert!(matches!(p("-e 1").unwrap(), Command::Eval { .. }));
        assert!(matches!(
            p("--cluster c.toml -e 1").unwrap(),
            Command::Eval { .. }
        ));
        assert_eq!(
            p("check a.rhai b.rhai").unwrap(),
            Command::Check {
                scripts: vec!["a.rhai".into(), "b.rhai".into()]
            }
        );
        assert_eq!(p("functions").unwrap(), Command::Functions);
        match p("--journal j.jsonl audit show 2026 --format json").unwrap() {
            Command::Audit(a) => {
                assert_eq!(a.journal.as_deref(), Some(std::path::Path::new("j.jsonl")));
                assert_eq!((a.format, a.show.as_deref()), (Format::Json, Some("2026")));
            }
            other => panic!("{other:?}"),
        }
        match p("audit --all").unwrap() {
            Command::Audit(a) => assert!(a.all && a.show.is_none() && a.journal.is_none()),
            other => panic!("{other:?}"),
        }
        match p("sim --nodes 5 --inventory /tmp/c.toml --speed 10 --fault node2:crash --seed 7")
            .unwrap()
        {
            Command::Sim(s) => {
                assert_eq!(
                    (s.nodes, s.speed, s.inventory.to_str()),
                    (5, 10.0, Some("/tmp/c.toml"))
                );
                assert_eq!(s.faults, vec![("node2".to_string(), FaultKind::Crash)]);
                assert_eq!(s.seed, Some(7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_ops_and_control_actions_are_typed_here() {
        let ctl = |line: &str| match p(line).unwrap() {
            Command::SimCtl { control, node, op } => (control, node, op),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ctl("sim ctl 127.0.0.1:9 node2 stop"),
            ("127.0.0.1:9".into(), "node2".into(), HostOp::Stop)
        );
        for (word, op) in [("start", HostOp::Start), ("restart", HostOp::Restart)] {
            assert_eq!(ctl(&format!("sim ctl c n {word}")).2, op);
        }
        let v = Version::new(0, 11, 0);
        for (word, op) in [
            ("install", HostOp::Install(v.clone())),
            ("stage", HostOp::Stage(v.clone())),
            ("activate", HostOp::Activate(v.clone())),
        ] {
            assert_eq!(ctl(&format!("sim ctl c n {word} 0.11.0")).2, op);
        }
        for (word, want) in [
            ("pause", Action::Pause),
            ("resume", Action::Resume),
            ("abort", Action::Abort),
        ] {
            match p(&format!("--cluster c.toml {word} --reason why")).unwrap() {
                Command::Request { action, reason, .. } => {
                    assert_eq!((action, reason.as_str()), (want, "why"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for (line, want) in [
            ("", "nothing to run"),
            ("--set novalue s.rhai", "expected NAME=VALUE"),
            ("--sim=0 s.rhai", "1 to 1000 nodes"),
            ("--sim=3@X.Y.Z s.rhai", "`X.Y.Z` is not a version"),
            ("--sim --sim-speed 0 s.rhai", "--sim-speed must be"),
            (
                "--sim-speed 2 s.rhai",
                "--sim-speed applies to the simulator",
            ),
            ("s.rhai 0.11.0 --yes", "`--yes` comes after the script name"),
            ("-e 1 s.rhai", "cannot be combined"),
            ("sim --version nope", "--version: `nope` is not a version"),
            ("sim --fault node2", "expected NODE:KIND"),
            (
                "sim --fault node2:melt",
                "--fault node2:melt: simulator: unknown fault kind `melt` (expected one of: crash, hang, \
                 partition, heal, slow_catchup, fail_install, flaky, wipe, restore_backup, unsynced_disk)",
            ),
            (
                "sim ctl 127.0.0.1:1 node1 melt",
                "[possible values: stop, start, restart, install, stage, activate]",
            ),
            ("sim ctl 127.0.0.1:1 node1 stage", "sim ctl stage needs a VERSION"),
            (
                "sim ctl 127.0.0.1:1 node1 activate X.Y",
                "sim ctl activate: `X.Y` is not a version",
            ),
            (
                "sim ctl 127.0.0.1:1 node1 restart 0.11.0",
                "sim ctl restart takes no version (got 0.11.0)",
            ),
            ("--sim abort", "abort reads the cluster another run works on"),
            ("--cluster a.toml --sim s.rhai", "cannot be used with"),
            (
                "--sim status --cluster a.toml",
                "name two different clusters",
            ),
            ("--format yaml s.rhai", "invalid value 'yaml'"),
            ("--notify ftp://h/x s.rhai", "--notify: webhook `ftp://h/…`"),
            ("audit show", "<RUN>"),
            (
                "--sim --report r.html repl",
                "--report applies to a script run",
            ),
        ] {
            let (msg, code) = p(line).expect_err(line);
            assert_eq!(code, 2, "{line}: {msg}");
            assert!(msg.contains(want), "{line}: wanted {want:?} in {msg}");
        }
    }

    #[test]
    fn help_and_version_exit_zero() {
        let (help, code) = p("--help").unwrap_err();
        assert_eq!(code, 0);
        assert!(help.contains("Exit codes: 0 done"));
        assert_eq!(p("--version").unwrap_err().1, 0);
    }
}
