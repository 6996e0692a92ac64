//! The command line. clap lives here and nowhere else: arguments are parsed, checked and
//! turned into a `Command` before anything else sees them. `definition.rs` is what clap parses (the
//! options, the subcommands, their help); `complete.rs` answers the shell's completion requests; this
//! file checks what clap parsed and builds the `Command`.

mod complete;
mod definition;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use semver::Version;

pub use crate::audit::AuditOptions;
use crate::lease::Action;
use crate::model::policy::parse_version;
use crate::output::Format;
pub use crate::session::{RunOptions, Target};
use crate::sim::FaultKind;
pub use crate::steer::StatusOptions;
use crate::transport::host::HostOp;

pub use definition::DEFAULT_SIM;
use definition::{own_options, sim_value, Args, AuditSub, FormatArg, OutputArg, SimSub, Sub};

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
    /// `functions [MODULE]`: every script function, or one module's (`None` for all).
    Functions {
        module: Option<String>,
    },
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
    /// `status`: the cluster and the run holding its lease, once or until the run ends.
    Status {
        run: RunOptions,
        view: StatusOptions,
    },
    /// `pause`, `resume` or `abort`: a request to the run holding the lease.
    Request {
        run: RunOptions,
        action: Action,
        reason: String,
    },
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
            if it.peek().is_some_and(|next| sim_value(next)) {
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

/// Parses the command line. `Err` carries what to print and the exit code (0 for --help and --version).
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Command, (String, i32)> {
    let argv: Vec<OsString> = argv.into_iter().collect();
    // The shell asking for completions (`completions SHELL` registered it): answered on stdout here.
    if let Some(done) = complete::from_env(&argv) {
        return Err(done.map_or_else(|e| (format!("error: {e}\n"), 2), |()| (String::new(), 0)));
    }
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
            Sub::Status { after, .. }
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
    let mut format = after.and_then(|a| a.format).unwrap_or(args.format);
    // `status -o json` is kubectl's spelling of --format json.
    if let Some(Sub::Status {
        output: Some(OutputArg::Json),
        ..
    }) = &args.command
    {
        format = FormatArg::Json;
    }
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
        if args.sim_seed.is_some() {
            return Err(usage(
                "--sim-seed applies to the simulator (--sim) only: a real cluster has no seed"
                    .into(),
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
                seed: args.sim_seed,
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
        notify_on: (!args.notify_on.is_empty()).then(|| args.notify_on.clone()),
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
                forced,
                script,
                cluster,
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
            forced,
            script,
            cluster: cluster.or(args.cluster.clone()),
        })),
        (Some(Sub::Functions { module }), None) => Ok(Command::Functions {
            module: module.map(|m| m.trim_end_matches("::").to_string()),
        }),
        (Some(Sub::Status { watch, output, .. }), None) => Ok(Command::Status {
            run: control_target(run, "status")?,
            view: StatusOptions {
                watch,
                wide: output == Some(OutputArg::Wide),
            },
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
            script: complete::registration(shell).map_err(|e| (format!("error: {e}\n"), 1))?,
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
                seed: None,
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
                seed: None,
            }
        );
        let (r, ..) = run("--sim --sim-seed 7 x.rhai");
        assert!(matches!(r.target, Target::Sim { seed: Some(7), .. }));
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
        assert_eq!(r.notify_on, None);
        let (r, ..) = run("--notify-on gate,run_end --notify-on script s.rhai");
        assert_eq!(
            r.notify_on.as_deref(),
            Some(&["gate".to_string(), "run_end".into(), "script".into()][..])
        );
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
        assert_eq!(p("functions").unwrap(), Command::Functions { module: None });
        assert_eq!(
            p("functions cluster::").unwrap(),
            Command::Functions {
                module: Some("cluster".into())
            }
        );
        match p("--cluster c.toml status -w -o wide").unwrap() {
            Command::Status { run, view } => {
                assert!(view.watch && view.wide);
                assert_eq!(run.format, Format::Text);
            }
            other => panic!("{other:?}"),
        }
        match p("status --cluster c.toml -o json").unwrap() {
            Command::Status { run, view } => {
                assert!(!view.watch && !view.wide);
                assert_eq!(run.format, Format::Json);
            }
            other => panic!("{other:?}"),
        }
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
            ("--sim-seed 2 s.rhai", "--sim-seed applies to the simulator"),
            ("--sim --sim-seed x s.rhai", "invalid value 'x' for '--sim-seed <N>'"),
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
            ("--notify-on steps s.rhai", "possible values: run_start"),
            ("--notify-on gate,,run_end s.rhai", "a value is required for '--notify-on"),
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

    /// Lines of `help` that a greedy wrap at `width` would have joined: the next line's first word fits
    /// on the line before it, in the same paragraph. Text wrapped twice (by hand, then by clap at a
    /// narrower width) shows this; a paragraph clap wrapped once never does. List items, table rows,
    /// example commands and usage lines are not paragraphs.
    fn wrapped_twice(help: &str, width: usize) -> Vec<String> {
        let indent = |l: &str| l.len() - l.trim_start().len();
        // Usage is clap's to lay out, not wrapped: its block ends at the first blank line.
        let mut in_usage = false;
        let lines: Vec<&str> = help
            .lines()
            .filter(|l| {
                in_usage = l.starts_with("Usage:") || (in_usage && !l.is_empty());
                !in_usage
            })
            .collect();
        let mut bad = Vec::new();
        for pair in lines.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (at, bt) = (a.trim_start(), b.trim_start());
            if a.trim().is_empty()
                || bt.is_empty()
                || indent(a) != indent(b)
                || at.starts_with('#')
                || bt.starts_with('#')
                || bt.starts_with('-')
                || bt.starts_with("neumann-script")
                || bt.starts_with("source <(")
                || bt.contains("  ")
                || a.ends_with(':')
            {
                continue;
            }
            let word = bt.split_whitespace().next().unwrap_or_default();
            if a.trim_end().chars().count() + 1 + word.chars().count() <= width {
                bad.push(format!("{a}\n{b}"));
            }
        }
        bad
    }

    #[test]
    fn help_is_wrapped_once_to_the_width_and_usage_fits_80_columns() {
        use clap::CommandFactory;
        fn all(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
            out.push(cmd.clone());
            for sub in cmd.get_subcommands() {
                all(sub, out);
            }
        }
        let mut root = definition::Args::command();
        root.build();
        let mut commands = Vec::new();
        all(&root, &mut commands);
        for width in [60, 80, 100] {
            for cmd in &commands {
                let help = cmd.clone().term_width(width).render_help().to_string();
                let bad = wrapped_twice(&help, width);
                assert!(
                    bad.is_empty(),
                    "{} at {width} columns: wrapped twice:\n{}",
                    cmd.get_name(),
                    bad.join("\n--\n")
                );
            }
        }
        let usage = root.render_usage().to_string();
        for line in usage.lines() {
            assert!(
                line.chars().count() <= 80,
                "usage line over 80 columns: {line}"
            );
        }
        // The check fires on a paragraph broken by hand and wrapped again.
        assert_eq!(
            wrapped_twice(
                "x\n\nSCRIPT is a path; when no such file exists,\nthe stock script is used",
                80
            )
            .len(),
            1
        );
    }

    #[test]
    fn help_and_version_exit_zero() {
        let (help, code) = p("--help").unwrap_err();
        assert_eq!(code, 0);
        assert!(help.contains("Exit codes: 0 done"));
        assert_eq!(p("--version").unwrap_err().1, 0);
    }
}
