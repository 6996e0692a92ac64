//! `neumann-script repl`: the same runtime, limits and API as scripts, one entry at a time. Variables,
//! functions and imports persist between entries; Ctrl-C cancels the running entry and returns to the
//! prompt; history lives in the user's state directory and is shared across sessions.

pub mod helper;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use rhai::{Dynamic, Scope, AST};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};

use crate::error::Error;
use crate::interrupt::Signal;
use crate::output::{errln, outln, Format};
use crate::script::engine::ScriptEngine;
use crate::script::{custom_types, show};
use helper::{Known, ReplHelper};

const HELP: &str = "\
Type Rhai and press Enter; the value of the last expression is printed. Variables, functions and imports
persist between entries, and an unfinished block or call continues on the next line.
  cluster::health()                      the cluster at a glance
  let h = cluster::health(); h.problems  values keep their properties (Tab completes them)
  metrics::compare(\"node3\", \"node1\", 30)  a canary against a baseline over 30 s
Commands:
  help [FUNCTION]     this text, or one function's signature and doc (help cluster::health)
  functions [MODULE]  every function, or one module's
  load FILE           run a script file into this session (its functions and variables stay)
  nodes               the inventory's nodes
  history             the entries of this and earlier sessions (Ctrl-R searches them)
  exit                leave (or Ctrl-D)
Tab completes modules, functions, properties after a dot, node ids inside strings, and commands.
Ctrl-C cancels a running entry (a node between stop and start is started first); at the prompt it clears the line.";

/// Where REPL history is kept.
fn history_path() -> Option<PathBuf> {
    crate::journal::default_path().map(|p| p.with_file_name("repl_history"))
}

/// The largest history file read: 10,000 entries of a long line each; a bigger one is not history.
const MAX_HISTORY: u64 = 16 << 20;

/// Whether the history file can be read and appended: missing, or a regular file within the bound. A
/// FIFO would hang the REPL's start, a device would fill memory; then the REPL keeps no history,
/// and says why rather than refusing to start when an incident needs it.
fn usable_history(path: &std::path::Path) -> bool {
    let why = match crate::files::check_regular_or_missing(path) {
        Err(e) => e.to_string(),
        Ok(()) => match std::fs::metadata(path).map(|m| m.len()) {
            Ok(len) if len > MAX_HISTORY => {
                format!("is {len} bytes; the limit is {} MiB", MAX_HISTORY >> 20)
            }
            _ => return true,
        },
    };
    errln!(
        "warning: the REPL history `{}`: {why}; this session keeps no history (move the file away to start a new one)",
        path.display()
    );
    false
}

/// Splits leading `import "..." as x;` statements from an entry: Rhai forgets imports between
/// evaluations, so the REPL keeps them and puts them in front of every later entry.
fn split_imports(text: &str) -> (Vec<String>, String) {
    let mut imports = Vec::new();
    let mut rest = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if rest.is_empty() && t.starts_with("import ") && t.contains(" as ") {
            imports.push(format!("{};", t.trim_end_matches(';')));
        } else {
            rest.push(line);
        }
    }
    (imports, rest.join("\n"))
}

/// What one REPL keeps between entries: the engine, the scope and functions entries accumulate, the
/// imports put in front of every entry, and what the completer knows.
struct Repl<'a> {
    engine: &'a ScriptEngine,
    scope: Scope<'static>,
    lib: AST,
    imports: Vec<String>,
    format: Format,
    known: Rc<RefCell<Known>>,
}

impl Repl<'_> {
    fn eval(&mut self, text: &str) -> Result<Dynamic, Error> {
        let (new_imports, body) = split_imports(text);
        let mut imports = self.imports.clone();
        for i in new_imports {
            if !imports.contains(&i) {
                imports.push(i);
            }
        }
        let source = if imports.is_empty() {
            body.clone()
        } else {
            format!("{}\n{body}", imports.join(" "))
        };
        self.engine.ctx().interrupt.reset();
        let result = self
            .engine
            .eval_entry(&mut self.scope, &mut self.lib, &source);
        if result.is_ok() {
            self.imports = imports;
        }
        self.refresh();
        result
    }

    /// Tells the completer which variables exist now and what they hold.
    fn refresh(&self) {
        let mut k = self.known.borrow_mut();
        k.vars.clear();
        for (name, _, value) in self.scope.iter() {
            let ty = if let Some(map) = value.read_lock::<rhai::Map>() {
                let key = format!("#map:{name}");
                k.fields
                    .insert(key.clone(), map.keys().map(|s| s.to_string()).collect());
                key
            } else {
                self.engine
                    .rhai()
                    .map_type_name(value.type_name())
                    .to_string()
            };
            k.vars.push((name.to_string(), ty));
        }
    }

    fn print(&self, v: &Dynamic) {
        match self.format {
            Format::Json => outln!(
                "{}",
                serde_json::to_string_pretty(&show::to_json(v)).unwrap_or_default()
            ),
            Format::Text => {
                if let Some(text) = show::to_text(v) {
                    outln!("{text}");
                }
            }
        }
    }

    fn help(&self, topic: &str) {
        if topic.is_empty() {
            outln!("{HELP}");
            return;
        }
        let docs: Vec<_> = self
            .engine
            .docs()
            .iter()
            .filter(|d| {
                let full = if d.module.is_empty() {
                    d.name.to_string()
                } else {
                    format!("{}::{}", d.module, d.name)
                };
                full == topic || d.module == topic
            })
            .collect();
        if docs.is_empty() {
            outln!("no function or module `{topic}`: `functions` lists them all");
        }
        for d in docs {
            outln!("{}\n    {}", d.signature(), d.doc.replace('\n', "\n    "));
        }
    }

    fn functions(&self, module: &str) {
        for d in self
            .engine
            .docs()
            .iter()
            .filter(|d| module.is_empty() || d.module == module)
        {
            outln!(
                "{:<60} {}",
                d.signature(),
                d.doc.lines().next().unwrap_or("")
            );
        }
    }

    fn nodes(&self) {
        match self.engine.ctx().cluster.borrow().as_ref() {
            None => outln!("no cluster: start with --cluster FILE or --sim"),
            Some(c) => {
                outln!("{} ({})", c.inventory.name, c.inventory.source.display());
                for n in &c.inventory.nodes {
                    let ssh = n
                        .ssh
                        .as_ref()
                        .map(|t| format!("  ssh {t}"))
                        .unwrap_or_default();
                    outln!("  {:<10} {}{ssh}", n.id, n.admin_url);
                }
            }
        }
    }
}

/// An entry's error, on stderr; the REPL goes on.
fn print_error(e: &Error) {
    match e {
        Error::Script(m) | Error::Guard(m) => errln!("{m}"),
        Error::Interrupted { .. } => errln!("interrupted"),
        other => errln!("error: {other}"),
    }
}

/// What the completer knows before the first entry.
fn known(engine: &ScriptEngine) -> Known {
    let mut k = Known::default();
    for d in engine.docs() {
        if d.module.is_empty() {
            k.globals.push(d.name.to_string());
        } else {
            k.modules
                .entry(d.module.to_string())
                .or_default()
                .push(d.name.to_string());
        }
    }
    for list in k.modules.values_mut() {
        list.dedup();
    }
    k.fields = custom_types::completions(engine.rhai());
    if let Some(c) = engine.ctx().cluster.borrow().as_ref() {
        k.nodes = c.inventory.nodes.iter().map(|n| n.id.clone()).collect();
    }
    k
}

/// Runs the REPL until `exit` or Ctrl-D.
pub fn run(engine: &ScriptEngine, format: Format) -> Result<(), Error> {
    let known = Rc::new(RefCell::new(known(engine)));
    let config = Config::builder()
        .auto_add_history(true)
        .history_ignore_dups(true)
        .map_err(|e| Error::Tool(e.to_string()))?
        .completion_type(CompletionType::List)
        .max_history_size(10_000)
        .map_err(|e| Error::Tool(e.to_string()))?
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)
        .map_err(|e| Error::Tool(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(ReplHelper::new(known.clone())));
    let history = history_path().filter(|p| usable_history(p));
    if let Some(p) = &history {
        if let Some(dir) = p.parent() {
            let _ = crate::journal::private_dir(dir);
        }
        let _ = editor.load_history(p);
    }
    let cluster = engine
        .ctx()
        .cluster
        .borrow()
        .as_ref()
        .map(|c| c.inventory.source.display().to_string());
    outln!(
        "neumann-script {} REPL on {}: `help` for help, Tab completes, Ctrl-D leaves",
        env!("CARGO_PKG_VERSION"),
        cluster.as_deref().unwrap_or("no cluster")
    );
    let mut repl = Repl {
        engine,
        scope: engine.new_scope(),
        lib: AST::empty(),
        imports: Vec::new(),
        format,
        known,
    };
    repl.refresh();
    let interrupt = engine.ctx().interrupt.clone();
    loop {
        // At the prompt nothing is in progress: SIGTERM or SIGHUP ends the REPL at once.
        interrupt.set_idle(true);
        let read = editor.readline("neumann> ");
        interrupt.set_idle(false);
        let line = match read {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Tool(format!("reading input: {e}"))),
        };
        if let Some(p) = &history {
            let _ = editor.append_history(p);
        }
        let t = line.trim();
        let (cmd, rest) = t
            .split_once(char::is_whitespace)
            .map_or((t, ""), |(c, r)| (c, r.trim()));
        match cmd {
            "" => {}
            "exit" | "quit" => break,
            "help" => repl.help(rest),
            "functions" => repl.functions(rest),
            "nodes" => repl.nodes(),
            "history" => {
                for (i, entry) in editor.history().iter().enumerate() {
                    outln!("{:>5}  {}", i + 1, entry.replace('\n', "\n       "));
                }
            }
            "load" if !rest.is_empty() => {
                match crate::files::read_text(std::path::Path::new(rest), crate::files::MAX_TEXT) {
                    Ok(text) => {
                        match repl.eval(&crate::script::diagnostics::strip_shebang(&text)) {
                            Ok(_) => outln!("loaded {rest}"),
                            Err(e) => print_error(&e),
                        }
                    }
                    Err(e) => errln!("error: cannot read `{rest}`: {e}"),
                }
            }
            _ => match repl.eval(&line) {
                Ok(v) => repl.print(&v),
                Err(e) => print_error(&e),
            },
        }
        // Ctrl-C cancels one entry; SIGTERM and SIGHUP end the REPL once the entry has stopped.
        if let Some(sig) = interrupt.signal().filter(|s| *s != Signal::Int) {
            return Err(Error::Interrupted {
                signal: sig.number(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_imports_are_kept_for_later_entries() {
        let (i, rest) = split_imports("import \"upgrade\" as up;\nup::default_opts()");
        assert_eq!(i, vec!["import \"upgrade\" as up;"]);
        assert_eq!(rest, "up::default_opts()");
        assert_eq!(split_imports("1 + 1").0.len(), 0);
    }
}
