//! The program: turns a parsed `Command` into work and an exit code. `main` only calls `run`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::cli::{self, Command, RunOptions, SimOptions, Target};
use crate::error::Error;
use crate::files::{self, ReadError};
use crate::inventory::Inventory;
use crate::output::{err, errln, out, outln, Answer, Format, Output, Unanswered};
use crate::script::ctx::Ctx;
use crate::script::engine::ScriptEngine;
use crate::script::options::Unchecked;
use crate::script::{embedded, show};
use crate::session::Session;
use crate::sim::{SimConfig, Simulator};
use crate::transport::host::HostOp;

/// Runs the program with these arguments and returns the process exit code.
pub fn run(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let argv: Vec<OsString> = argv.into_iter().collect();
    crate::journal::set_command_line(journaled_words(&argv));
    let command = match cli::parse(argv) {
        Ok(c) => c,
        Err((text, code)) => {
            if code == 0 {
                out!("{text}");
            } else {
                err!("{text}");
            }
            return code;
        }
    };
    match execute(command) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                Error::Script(m) | Error::Guard(m) => errln!("{m}"),
                // What the run changed and how to go on were said above, by the session.
                Error::Interrupted { .. } => errln!("interrupted: stopped at a safe point"),
                other => errln!("error: {other}"),
            }
            e.exit_code()
        }
    }
}

/// The command line as the journal keeps it: each webhook URL cut to `scheme://host:port/…`, since
/// receivers keep their token in the path or query (the admin token is redacted from every record).
fn journaled_words(argv: &[OsString]) -> Vec<String> {
    let mut words = Vec::with_capacity(argv.len());
    let mut url_next = false;
    for a in argv.iter().map(|a| a.to_string_lossy()) {
        let word = if url_next {
            crate::notify::redact(&a)
        } else if let Some(url) = a.strip_prefix("--notify=") {
            format!("--notify={}", crate::notify::redact(url))
        } else {
            a.to_string()
        };
        url_next = a == "--notify";
        words.push(word);
    }
    words
}

/// Runs the command; `Ok` carries the exit code (0 but for `sim ctl`, which passes on its command's, and
/// `status --watch`, which ends quietly with a signal's code when the operator stops watching).
fn execute(command: Command) -> Result<i32, Error> {
    if let Command::SimCtl { control, node, op } = &command {
        return sim_ctl(control, node, op);
    }
    if let Command::Status { run, view } = &command {
        return crate::steer::status(run, view);
    }
    execute_command(command).map(|()| 0)
}

/// `neumann-script sim ctl`: one host-side command on a simulated node.
fn sim_ctl(control: &str, node: &str, op: &HostOp) -> Result<i32, Error> {
    let inv = Inventory::parse(
        &format!("[sim]\ncontrol = \"{control}\"\n[[nodes]]\nid = \"{node}\"\nadmin_url = \"http://{control}\"\n"),
        Path::new("<sim ctl>"),
    )?;
    let hosts = crate::transport::host::Hosts::new(&inv).map_err(Error::Tool)?;
    let out = crate::session::tokio_runtime()?
        .block_on(hosts.run(&inv.nodes[0], op))
        .map_err(|e| Error::Tool(e.to_string()))?;
    out!("{}", out.stdout);
    err!("{}", out.stderr);
    Ok(i32::try_from(out.status).unwrap_or(1))
}

fn execute_command(command: Command) -> Result<(), Error> {
    match command {
        Command::Functions { module } => functions(module.as_deref()),
        Command::Repl { run } => {
            let format = run.format;
            if !run.options.is_empty() {
                Output::new().info(
                    "the REPL cannot know before its entries are typed which options they ask for: a --set none of them asks for is reported when it ends",
                );
            }
            with_cluster(
                &run,
                Vec::new(),
                ("<repl>", ""),
                &Unchecked::all(&run.options),
                None,
                |engine| crate::repl::run(engine, format),
            )
        }
        Command::Definitions { dir } => {
            let (_tokio, engine) = bare_engine()?;
            let write = |dir: &Path| -> std::io::Result<()> {
                std::fs::create_dir_all(dir)?;
                for (name, text) in engine.rhai().definitions().iter_files() {
                    std::fs::write(dir.join(name), declarable(&text))?;
                }
                Ok(())
            };
            write(&dir).map_err(|e| {
                Error::Usage(format!(
                    "cannot write definitions to `{}`: {e}",
                    dir.display()
                ))
            })?;
            outln!("wrote the script API's definitions to {}", dir.display());
            Ok(())
        }
        Command::Completions { script } => {
            out!("{script}");
            Ok(())
        }
        Command::Check { scripts } => check(&scripts),
        Command::Audit(opts) => crate::audit::command(&opts),
        Command::Status { .. } => Err(Error::Tool("status is handled before this point".into())),
        Command::Request {
            run,
            action,
            reason,
        } => crate::steer::request(&run, action, &reason),
        Command::Sim(opts) => foreground_sim(&opts),
        Command::SimCtl { .. } => Err(Error::Tool("sim ctl is handled before this point".into())),
        Command::Run { run, script, args } => {
            let (name, text) = load_script(&script)?;
            let unchecked = check_options(&name, &text, &run)?;
            if offers_rehearsal(&run) {
                // An operator at a terminal sees the plan on a twin first, and says whether to go on.
                // The report is the live run's; the rehearsal before it only shows its plan. What the
                // live run would refuse is refused before the rehearsal, not after the question.
                preflight(&run)?;
                let rehearsal = RunOptions {
                    rehearse: true,
                    report: None,
                    ..run.clone()
                };
                preflight(&rehearsal)?;
                let session = Session::open(&rehearsal, args.clone(), (&name, &text), None)?;
                let result = session.engine().run(&name, &text).map(|_| ());
                let asked = session.engine().ctx().options_asked.borrow().clone();
                let record = session.rehearsal_record();
                session.close(&result);
                unchecked.warn_never_asked(&asked);
                result?;
                let question = "Run this plan against the live cluster now?";
                // The journal says what the operator answered: a declined plan is a run that was not
                // made, and a confirmed one names the rehearsal it followed.
                let declined = |how: &str| {
                    if let Some(r) = &record {
                        r.event(
                            "declined",
                            &serde_json::json!({ "question": question, "answer": how }),
                        );
                    }
                };
                match ask(&format!("\n{question}"))? {
                    Asked::Yes => {}
                    Asked::No => {
                        declined("no");
                        return Err(Error::Guard(
                            "stopped safely: not confirmed after the rehearsal; nothing was changed"
                                .into(),
                        ));
                    }
                    Asked::Signal(sig) => {
                        declined(sig.name());
                        // Between the rehearsal and the live run nothing is open that needs closing.
                        errln!(
                            "\n{}: not confirmed; nothing was changed on the live cluster",
                            sig.name()
                        );
                        crate::interrupt::exit_process(sig.exit_code());
                    }
                }
                let live = RunOptions { yes: true, ..run };
                let after = record.as_ref().map(|r| r.run_id().to_string());
                return with_cluster(
                    &live,
                    args,
                    (&name, &text),
                    &unchecked,
                    after.as_deref(),
                    |engine| engine.run(&name, &text).map(|_| ()),
                );
            }
            with_cluster(&run, args, (&name, &text), &unchecked, None, |engine| {
                engine.run(&name, &text).map(|_| ())
            })
        }
        Command::Eval { run, code } => {
            let unchecked = check_options("<-e>", &code, &run)?;
            let format = run.format;
            with_cluster(
                &run,
                Vec::new(),
                ("<-e>", &code),
                &unchecked,
                None,
                |engine| {
                    let v = engine.run("<-e>", &code)?;
                    match format {
                        Format::Json => outln!(
                            "{}",
                            serde_json::to_string_pretty(&show::to_json(&v)).unwrap_or_default()
                        ),
                        Format::Text => {
                            if let Some(text) = show::to_text(&v) {
                                outln!("{text}");
                            }
                        }
                    }
                    Ok(())
                },
            )
        }
    }
}

/// A script against a real inventory, run by a person at a terminal without --yes: rehearse first.
fn offers_rehearsal(run: &RunOptions) -> bool {
    matches!(run.target, Target::Inventory(_))
        && !run.yes
        && !run.rehearse
        && crate::output::at_terminal()
}

/// Definitions without the declarations Rhai writes for standard conversions it registered without
/// metadata (`fn to_float(_: ?) -> ;`): they carry no type, and an editor rejects the whole file.
fn declarable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !(line.starts_with("fn ") && line.trim_end().ends_with("-> ;")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// What the operator answered after a rehearsal.
enum Asked {
    Yes,
    No,
    /// A signal while it waited: the caller ends the run with its exit code.
    Signal(crate::interrupt::Signal),
}

/// The question after a rehearsal. A signal while it waits ends the run: nothing has changed yet.
/// (The rehearsal's signal handlers outlive it and would swallow the signal otherwise.)
fn ask(question: &str) -> Result<Asked, Error> {
    let tokio = crate::session::tokio_runtime()?;
    let signal = Arc::new(OnceLock::new());
    let listening = {
        let _in = tokio.enter();
        crate::interrupt::next_signal()
    };
    tokio.spawn({
        let signal = signal.clone();
        async move {
            let _ = signal.set(listening.await);
        }
    });
    let answer = Output::new().confirm(question, None, &|| signal.get().is_some());
    match answer.map_err(|e| match e {
        Unanswered::NoTerminal(m) | Unanswered::Unreadable(m) => Error::Tool(m),
    })? {
        Answer::Yes => Ok(Asked::Yes),
        Answer::No => Ok(Asked::No),
        Answer::Stopped => Ok(Asked::Signal(
            signal
                .get()
                .copied()
                .unwrap_or(crate::interrupt::Signal::Int),
        )),
    }
}

/// A script path, or a stock script of that name when no such file exists.
fn load_script(script: &str) -> Result<(String, String), Error> {
    let path = Path::new(script);
    match files::read_text(path, files::MAX_TEXT) {
        Ok(text) => return Ok((script.to_string(), text)),
        Err(ReadError::Refused(why)) => {
            return Err(Error::Usage(format!("script `{script}`: {why}")))
        }
        Err(ReadError::NotFound) => {}
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

/// Compiles the script and refuses every `--set` it does not take, before anything is opened (a lease, a
/// simulator, a rehearsal); gives the names it could not judge, for the end of the run.
fn check_options(name: &str, text: &str, run: &RunOptions) -> Result<Unchecked, Error> {
    bare_engine()?
        .1
        .options(name, text)?
        .check_sets(name, &run.options)
}

/// Sets up the cluster the options name, runs `body` with a script engine on it, and closes the session
/// whatever happened. `script` is (name, text), for the journal; `after_rehearsal` the rehearsal a live
/// run was confirmed after. After the close, the `--set` names the
/// up-front check could not judge and the run never asked for are reported.
fn with_cluster(
    run: &RunOptions,
    args: Vec<String>,
    script: (&str, &str),
    unchecked: &Unchecked,
    after_rehearsal: Option<&str>,
    body: impl FnOnce(&ScriptEngine) -> Result<(), Error>,
) -> Result<(), Error> {
    preflight(run)?;
    let session = Session::open(run, args, script, after_rehearsal)?;
    let result = body(session.engine());
    let asked = session.engine().ctx().options_asked.borrow().clone();
    session.close(&result);
    unchecked.warn_never_asked(&asked);
    result
}

/// What can be refused before a session starts anything (a simulator, a twin, a lease): the lease's TTL
/// from the environment, a `--report` that cannot be written, and a `--journal` that is there but not a
/// regular file (a rehearsal only reads it at its end; a FIFO would hang that read, a device would never
/// end it).
fn preflight(run: &RunOptions) -> Result<(), Error> {
    crate::lease::ttl_setting().map_err(Error::Usage)?;
    if let Some(path) = &run.report {
        crate::report::check_path(path).map_err(Error::Usage)?;
    }
    if let Some(path) = &run.journal {
        files::check_regular_or_missing(path)
            .map_err(|e| Error::Usage(format!("--journal `{}`: {e}", path.display())))?;
    }
    Ok(())
}

fn bare_engine() -> Result<(tokio::runtime::Runtime, ScriptEngine), Error> {
    let tokio = crate::session::tokio_runtime()?;
    let ctx = Ctx::bare(tokio.handle().clone());
    Ok((tokio, ScriptEngine::new(ctx)))
}

fn functions(only: Option<&str>) -> Result<(), Error> {
    let (_tokio, engine) = bare_engine()?;
    if let Some(want) = only {
        if !engine.docs().iter().any(|d| d.module == want) {
            return Err(Error::Usage(format!(
                "functions {want}: no such module; the modules are {}",
                crate::script::modules::NAMES.join(", ")
            )));
        }
    }
    let mut module = None;
    for d in engine
        .docs()
        .iter()
        .filter(|d| only.is_none_or(|m| d.module == m))
    {
        if module != Some(d.module) {
            // A blank line between modules, none before the first.
            let gap = if module.is_some() { "\n" } else { "" };
            module = Some(d.module);
            outln!(
                "{gap}{}",
                if d.module.is_empty() {
                    "# everywhere (also: `args`, the script's arguments)".to_string()
                } else {
                    format!("# {}::", d.module)
                }
            );
        }
        outln!("{}", d.signature());
        for line in d.doc.lines() {
            outln!("    {line}");
        }
    }
    Ok(())
}

fn check(scripts: &[PathBuf]) -> Result<(), Error> {
    let tokio = crate::session::tokio_runtime()?;
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
        let text = files::read_text(path, files::MAX_TEXT)
            .map_err(|e| Error::Usage(format!("script `{}`: {e}", path.display())))?;
        targets.push((path.display().to_string(), text));
    }
    let mut failed = Vec::new();
    let fresh = || ScriptEngine::new(Ctx::bare(tokio.handle().clone()));
    let mut engine = fresh();
    for (name, text) in &targets {
        match engine
            .check(name, text)
            .and_then(|()| engine.options(name, text))
        {
            Ok(options) => outln!("ok: {name}\n  {}", options.describe()),
            Err(e) => {
                errln!("{e}");
                failed.push(name.clone());
                // The check may have declared the unknown modules it met, to read on: the next file
                // gets an engine without them.
                engine = fresh();
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
    // The file it would replace is read like any named file: `/dev/zero` or a FIFO is refused, not read.
    let not_ours = match files::read_text(&opts.inventory, files::MAX_TEXT) {
        Ok(existing) => (!existing.contains("[sim]"))
            .then(|| "exists and is not a simulator's inventory".to_string()),
        Err(ReadError::NotFound) => None,
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = not_ours {
        return Err(Error::Usage(format!(
            "--inventory `{}`: {why}: refusing to overwrite it (choose another --inventory FILE)",
            opts.inventory.display()
        )));
    }
    let tokio = crate::session::tokio_runtime()?;
    let cfg = SimConfig {
        nodes: opts.nodes,
        version: opts.version.clone(),
        speed: opts.speed,
        bad_versions: opts.bad_versions.clone(),
        faults: opts.faults.clone(),
        timed_faults: Vec::new(),
        seed: opts.seed,
        election_timeout_ms: None,
        shape: None,
        lease_api: true,
        rollback_limits_reported: true,
    };
    tokio.block_on(async {
        let sim = Simulator::start(cfg).await.map_err(|e| Error::Tool(format!("cannot start the simulator: {e}")))?;
        // In one piece: another terminal may be waiting for the file to appear.
        crate::files::write_whole(&opts.inventory, sim.inventory_toml().as_bytes(), ".inventory-")
            .map_err(|e| Error::Tool(format!("cannot write the inventory `{}`: {e}", opts.inventory.display())))?;
        let out = Output::new();
        out.info(&format!(
            "simulated cluster: {} nodes on {} (speed x{}, seed {}); inventory written to {}",
            opts.nodes,
            opts.version,
            opts.speed,
            sim.seed(),
            opts.inventory.display()
        ));
        for (id, url) in sim.nodes() {
            out.info(&format!("  {id}  {url}"));
        }
        out.info(&format!("  control  http://{}", sim.control_addr()));
        out.info(&format!(
            "drive it from another terminal: neumann-script --cluster {} -e 'cluster::health()'   (Ctrl-C or SIGTERM stops it)",
            opts.inventory.display()
        ));
        crate::interrupt::next_signal().await;
        sim.shutdown().await;
        let _ = std::fs::remove_file(&opts.inventory);
        out.info("simulator stopped; inventory removed");
        Ok(())
    })
}
