//! The program: turns a parsed `Command` into work and an exit code. `main` only calls `run`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{self, Command, RunOptions, SimOptions, Target};
use crate::error::Error;
use crate::host::HostOp;
use crate::inventory::Inventory;
use crate::ops::Cluster;
use crate::runtime::journal::{self, Journal};
use crate::runtime::{embedded, output::Output, value, Ctx, Format, Runtime, Settings};
use crate::sim::{FaultKind, SimConfig, Simulator};

/// Runs the program with these arguments and returns the process exit code.
pub fn run(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let command = match cli::parse(argv) {
        Ok(c) => c,
        Err((text, code)) => {
            if code == 0 {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            return code;
        }
    };
    match execute(command) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                Error::Script(m) | Error::Guard(m) => eprintln!("{m}"),
                Error::Interrupted => eprintln!(
                    "interrupted: stopped at a safe point; re-run to continue (nodes already done are skipped)"
                ),
                other => eprintln!("error: {other}"),
            }
            e.exit_code()
        }
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("neumann-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
}

/// Runs the command; `Ok` carries the exit code (0 but for `sim ctl`, which passes on its command's).
fn execute(command: Command) -> Result<i32, Error> {
    if let Command::SimCtl {
        control,
        node,
        action,
        version,
    } = &command
    {
        return sim_ctl(control, node, action, version.as_ref());
    }
    execute_command(command).map(|()| 0)
}

/// `neumann-script sim ctl`: one host-side command on a simulated node.
fn sim_ctl(
    control: &str,
    node: &str,
    action: &str,
    version: Option<&semver::Version>,
) -> Result<i32, Error> {
    let inv = Inventory::parse(
        &format!("[sim]\ncontrol = \"{control}\"\n[[nodes]]\nid = \"{node}\"\nadmin_url = \"http://{control}\"\n"),
        Path::new("<sim ctl>"),
    )?;
    let hosts = crate::host::Hosts::new(&inv).map_err(Error::Runtime)?;
    let op = match (action, version) {
        ("stop", _) => HostOp::Stop,
        ("start", _) => HostOp::Start,
        ("restart", _) => HostOp::Restart,
        (_, Some(v)) => HostOp::Install(v.clone()),
        (other, None) => return Err(Error::Usage(format!("sim ctl: unknown action `{other}`"))),
    };
    let out = tokio_runtime()?
        .block_on(hosts.run(&inv.nodes[0], &op))
        .map_err(|e| Error::Runtime(e.to_string()))?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(i32::try_from(out.status).unwrap_or(1))
}

fn execute_command(command: Command) -> Result<(), Error> {
    match command {
        Command::Functions => functions(),
        Command::Repl { run } => {
            let format = run.format;
            with_cluster(&run, Vec::new(), ("<repl>", ""), |rt| {
                crate::repl::run(rt, format)
            })
        }
        Command::Definitions { dir } => {
            let (_tokio, rt) = bare_runtime()?;
            std::fs::create_dir_all(&dir)
                .and_then(|()| rt.engine().definitions().write_to_dir(&dir))
                .map_err(|e| {
                    Error::Usage(format!(
                        "cannot write definitions to `{}`: {e}",
                        dir.display()
                    ))
                })?;
            println!("wrote the script API's definitions to {}", dir.display());
            Ok(())
        }
        Command::Completions { shell } => {
            print!("{}", cli::completions(shell));
            Ok(())
        }
        Command::Check { scripts } => check(&scripts),
        Command::Sim(opts) => foreground_sim(&opts),
        Command::SimCtl { .. } => Err(Error::Runtime(
            "sim ctl is handled before this point".into(),
        )),
        Command::Run { run, script, args } => {
            let (name, text) = load_script(&script)?;
            if offers_rehearsal(&run) {
                // An operator at a terminal sees the plan on a twin first, and says whether to go on.
                let rehearsal = RunOptions {
                    rehearse: true,
                    ..run.clone()
                };
                with_cluster(&rehearsal, args.clone(), (&name, &text), |rt| {
                    rt.run(&name, &text).map(|_| ())
                })?;
                if !ask("\nRun this plan against the live cluster now?")? {
                    return Err(Error::Guard(
                        "stopped safely: not confirmed after the rehearsal; nothing was changed"
                            .into(),
                    ));
                }
                let live = RunOptions { yes: true, ..run };
                return with_cluster(&live, args, (&name, &text), |rt| {
                    rt.run(&name, &text).map(|_| ())
                });
            }
            with_cluster(&run, args, (&name, &text), |rt| {
                rt.run(&name, &text).map(|_| ())
            })
        }
        Command::Eval { run, code } => {
            let format = run.format;
            with_cluster(&run, Vec::new(), ("<-e>", &code), |rt| {
                let v = rt.run("<-e>", &code)?;
                match format {
                    Format::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&value::to_json(&v)).unwrap_or_default()
                    ),
                    Format::Text => {
                        if let Some(text) = value::to_text(&v) {
                            println!("{text}");
                        }
                    }
                }
                Ok(())
            })
        }
    }
}

/// A script against a real inventory, run by a person at a terminal without --yes: rehearse first.
fn offers_rehearsal(run: &RunOptions) -> bool {
    use std::io::IsTerminal;
    matches!(run.target, Target::Inventory(_))
        && !run.yes
        && !run.rehearse
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// A yes/no question on the terminal.
fn ask(question: &str) -> Result<bool, Error> {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Runtime(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A script path, or a stock script of that name when no such file exists.
fn load_script(script: &str) -> Result<(String, String), Error> {
    let path = Path::new(script);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read script `{script}`: {e}")))?;
        return Ok((script.to_string(), text));
    }
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or(script);
    match embedded::script(file) {
        Some(text) if !script.contains('/') || !path.exists() => {
            Ok((format!("<stock>/{file}"), text.to_string()))
        }
        _ => {
            let stock: Vec<&str> = embedded::SCRIPTS.iter().map(|(n, _)| *n).collect();
            Err(Error::Usage(format!(
                "no script `{script}`: no such file, and no stock script of that name (stock scripts: {})",
                stock.join(", ")
            )))
        }
    }
}

/// Sets up the cluster the options name (an inventory, or a simulator started here), runs `body` with a
/// runtime on it, reports the state it leaves if it ends early, and shuts the simulator down whatever
/// happened. `script` is (name, text), for the journal.
fn with_cluster(
    run: &RunOptions,
    args: Vec<String>,
    script: (&str, &str),
    body: impl FnOnce(&Runtime) -> Result<(), Error>,
) -> Result<(), Error> {
    let tokio = tokio_runtime()?;
    let mut sim = None;
    let inventory = match &run.target {
        Target::Sim {
            nodes,
            version,
            speed,
            bad_versions,
        } => {
            let cfg = SimConfig {
                nodes: *nodes,
                version: version.clone(),
                speed: *speed,
                bad_versions: bad_versions.clone(),
                ..SimConfig::default()
            };
            let s = tokio
                .block_on(Simulator::start(cfg))
                .map_err(|e| Error::Runtime(format!("cannot start the simulator: {e}")))?;
            let inv = Inventory::parse(&s.inventory_toml(), Path::new("<embedded simulator>"))?;
            Output::new().info(&format!(
                "simulated cluster: {nodes} nodes on {version} (speed x{speed}), control API on {}",
                s.control_addr()
            ));
            sim = Some(s);
            Some(inv)
        }
        Target::Inventory(path) => Inventory::locate(path.as_deref())?,
    };
    // A rehearsal swaps the cluster for a twin; the live one is read once and never written to.
    let mut inventory = inventory;
    let mut twin = None;
    if run.rehearse {
        let live = inventory.take().ok_or_else(|| {
            Error::Usage("--rehearse needs a cluster to rehearse against: --cluster FILE, $NEUMANN_CLUSTER or ./neumann-cluster.toml".into())
        })?;
        let live_source = cluster_id(&live.source);
        let live = Cluster::new(live).map_err(Error::Runtime)?;
        let t = tokio.block_on(crate::rehearse::twin_of(&live))?;
        Output::new().info(&format!(
            "rehearsal: {} runs against a simulated twin of {live_source} ({}); only reads reach the live cluster",
            script.0, t.described
        ));
        inventory = Some(t.inventory.clone());
        twin = Some((t, live_source));
    }
    // Runs against a real inventory are journaled by default; the embedded simulator only on request.
    let journal_path = match (&run.journal, &sim, &inventory) {
        _ if twin.is_some() => None,
        (Some(p), _, _) => Some(p.clone()),
        (None, None, Some(_)) => journal::default_path(),
        _ => None,
    };
    let cluster_name = inventory
        .as_ref()
        .map(|i| cluster_id(&i.source))
        .unwrap_or_default();
    let journal = match &journal_path {
        Some(p) => Journal::open(p, script.0, script.1, &cluster_name).map_err(Error::Usage)?,
        None => Journal::off(),
    };
    let cluster = match inventory {
        Some(inv) => Some(Arc::new(Cluster::new(inv).map_err(Error::Runtime)?)),
        None => None,
    };
    let mut ctx = Ctx::bare(tokio.handle().clone());
    *ctx.cluster.borrow_mut() = cluster;
    ctx.journal = journal;
    ctx.settings = Settings {
        options: run.options.clone(),
        args,
        assume_yes: run.yes,
        simulated: sim.is_some() || twin.is_some(),
        rehearsal: twin.is_some(),
        format: run.format,
    };
    ctx.interrupt.install(tokio.handle());
    let runtime = Runtime::new(ctx);
    let result = body(&runtime);
    if let Some((t, live_source)) = twin {
        report_rehearsal(
            &runtime,
            &t,
            &live_source,
            run.journal.clone().or_else(journal::default_path),
            &result,
        );
        tokio.block_on(t.sim.shutdown());
    } else if result.is_err() {
        report_state(runtime.ctx());
    }
    // SSH master connections end with the run, not at the remote end's idle timeout.
    let ctx = runtime.ctx();
    let clusters: Vec<Arc<Cluster>> = ctx
        .cluster
        .borrow()
        .iter()
        .cloned()
        .chain(ctx.others.borrow().values().cloned())
        .collect();
    for c in clusters {
        tokio.block_on(c.hosts.close());
    }
    if let Some(s) = sim {
        let st = s.stats();
        runtime.ctx().out.info(&format!(
            "simulator: {} client writes ok, {} failed; {} elections; at least {} nodes healthy throughout; {} committed writes lost",
            st.client_writes_ok, st.client_writes_failed, st.elections, st.min_healthy_seen, st.lost_committed_writes
        ));
        tokio.block_on(s.shutdown());
    }
    result
}

/// How the journal names a cluster: its inventory's absolute path, so two `c.toml`s in different
/// directories are different clusters.
fn cluster_id(source: &Path) -> String {
    std::fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string()
}

/// What a rehearsal found: the plan, the guards that fired, the predicted duration and final state.
fn report_rehearsal(
    rt: &Runtime,
    twin: &crate::rehearse::Twin,
    live_source: &str,
    journal: Option<std::path::PathBuf>,
    result: &Result<(), Error>,
) {
    let ctx = rt.ctx();
    let plan = ctx.plan.borrow();
    println!(
        "\nrehearsal against a twin of {live_source}: nothing was changed on the live cluster"
    );
    println!("plan ({} changes, in order):", plan.len());
    for line in crate::rehearse::plan_lines(&plan) {
        println!("{line}");
    }
    if plan.is_empty() {
        println!("     (none)");
    }
    match result {
        Ok(()) => println!("guards: none fired"),
        Err(Error::Guard(m)) => println!("guards: {m}"),
        Err(e) => println!("the run would fail: {e}"),
    }
    let medians = journal
        .map(|p| crate::rehearse::journal_medians(&p, live_source))
        .unwrap_or_default();
    let (duration, basis) = crate::rehearse::predicted(&twin.sim.events(), &medians);
    println!(
        "predicted duration: {} (from {basis}, plus the tool's few percent)",
        crate::runtime::output::human_duration(duration)
    );
    if let Some(cluster) = ctx.cluster.borrow().clone() {
        if let Ok(h) = ctx.rt.block_on(cluster.health()) {
            println!("predicted final state:");
            println!(
                "{}",
                value::to_text(&rhai::Dynamic::from(h)).unwrap_or_default()
            );
        }
    }
}

/// After a run that ended early: the cluster's health now, and every node the run touched that is not
/// up and healthy, so the operator knows what was left and where.
fn report_state(ctx: &Ctx) {
    let (Some(cluster), touched) = (ctx.cluster.borrow().clone(), ctx.touched.borrow()) else {
        return;
    };
    if touched.is_empty() {
        return;
    }
    // Not `ctx.block_on`: after Ctrl-C that would refuse to run; this survey is read-only and bounded.
    let health = ctx
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(15), cluster.health()).await });
    let out = &ctx.out;
    match health {
        Ok(Ok(h)) => {
            out.info(&format!(
                "state now: {}/{} members healthy (quorum {}), leader {}{}",
                h.healthy_members,
                h.members.len(),
                h.quorum,
                h.leader.as_deref().unwrap_or("none"),
                if h.paused { ", cluster PAUSED" } else { "" }
            ));
            for m in h.members.iter().filter(|m| touched.contains(&m.id)) {
                let fine = m.state == "up" && m.healthy;
                out.info(&format!(
                    "  {} (changed by this run): {} on {}, {}{}",
                    m.id,
                    m.state,
                    m.version,
                    if m.healthy { "healthy" } else { "unhealthy" },
                    if fine { "" } else { "  <- needs attention" }
                ));
            }
        }
        Ok(Err(e)) => out.warn(&format!("could not read the cluster's state: {e}")),
        Err(_) => out.warn("could not read the cluster's state within 15 s"),
    }
    if let Some(p) = ctx.journal.path() {
        out.info(&format!(
            "every change this run made is in the journal {}",
            p.display()
        ));
    }
}

fn bare_runtime() -> Result<(tokio::runtime::Runtime, Runtime), Error> {
    let tokio = tokio_runtime()?;
    let ctx = Ctx::bare(tokio.handle().clone());
    Ok((tokio, Runtime::new(ctx)))
}

fn functions() -> Result<(), Error> {
    let (_tokio, rt) = bare_runtime()?;
    let mut module = None;
    for d in rt.docs() {
        if module != Some(d.module) {
            module = Some(d.module);
            println!(
                "{}",
                if d.module.is_empty() {
                    "# everywhere (also: `args`, the script's arguments)".to_string()
                } else {
                    format!("\n# {}::", d.module)
                }
            );
        }
        println!("{}", d.signature());
        for line in d.doc.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

fn check(scripts: &[PathBuf]) -> Result<(), Error> {
    let (_tokio, rt) = bare_runtime()?;
    let mut targets: Vec<(String, String)> = Vec::new();
    if scripts.is_empty() {
        targets.extend(
            embedded::SCRIPTS
                .iter()
                .map(|(n, t)| (format!("<stock>/{n}"), t.to_string())),
        );
        targets.extend(
            embedded::STDLIB
                .iter()
                .map(|(n, t)| (format!("<stdlib>/{n}.rhai"), t.to_string())),
        );
    }
    for path in scripts {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read script `{}`: {e}", path.display())))?;
        targets.push((path.display().to_string(), text));
    }
    let mut failed = Vec::new();
    for (name, text) in &targets {
        match rt.check(name, text) {
            Ok(()) => println!("ok: {name}"),
            Err(e) => {
                eprintln!("{e}");
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Script(format!(
            "check failed for {} of {} scripts: {}",
            failed.len(),
            targets.len(),
            failed.join(", ")
        )))
    }
}

/// `neumann-script sim`: runs until Ctrl-C, with its inventory written for other terminals.
fn foreground_sim(opts: &SimOptions) -> Result<(), Error> {
    if let Ok(existing) = std::fs::read_to_string(&opts.inventory) {
        if !existing.contains("[sim]") {
            return Err(Error::Usage(format!(
                "`{}` exists and is not a simulator's inventory: refusing to overwrite it (choose another --inventory FILE)",
                opts.inventory.display()
            )));
        }
    }
    let faults = opts
        .faults
        .iter()
        .map(|(node, kind)| {
            kind.parse::<FaultKind>()
                .map(|k| (node.clone(), k))
                .map_err(|e| Error::Usage(format!("--fault {node}:{kind}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tokio = tokio_runtime()?;
    let cfg = SimConfig {
        nodes: opts.nodes,
        version: opts.version.clone(),
        speed: opts.speed,
        bad_versions: opts.bad_versions.clone(),
        faults,
        seed: None,
        election_timeout_ms: None,
        shape: None,
    };
    tokio.block_on(async {
        let sim = Simulator::start(cfg).await.map_err(|e| Error::Runtime(format!("cannot start the simulator: {e}")))?;
        std::fs::write(&opts.inventory, sim.inventory_toml())
            .map_err(|e| Error::Runtime(format!("cannot write the inventory `{}`: {e}", opts.inventory.display())))?;
        let out = Output::new();
        out.info(&format!(
            "simulated cluster: {} nodes on {} (speed x{}); inventory written to {}",
            opts.nodes,
            opts.version,
            opts.speed,
            opts.inventory.display()
        ));
        for (id, url) in sim.nodes() {
            out.info(&format!("  {id}  {url}"));
        }
        out.info(&format!("  control  http://{}", sim.control_addr()));
        out.info(&format!(
            "drive it from another terminal: neumann-script --cluster {} -e 'cluster::health()'   (Ctrl-C stops it)",
            opts.inventory.display()
        ));
        let _ = tokio::signal::ctrl_c().await;
        sim.shutdown().await;
        let _ = std::fs::remove_file(&opts.inventory);
        out.info("simulator stopped; inventory removed");
        Ok(())
    })
}
