//! Resolves `import "name"` for scripts: a file beside the importing script wins, then `stdlib/` beside
//! it or one level up (a checkout's `scripts/` importing the checkout's `stdlib/`), then the embedded stdlib.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

use super::diagnostics::{strip_shebang, Sources};
use super::embedded;
use crate::model::RhaiResult;

pub struct Resolver {
    /// Compiled modules by source name, with the text they were compiled from: a module whose file changed
    /// since (edited during a REPL session) is compiled again rather than served stale.
    cache: RefCell<HashMap<String, (String, SharedModule)>>,
    sources: Rc<Sources>,
    /// The directory of the script being run: its copies win for every import, including imports made
    /// by embedded stdlib modules, so a team's edited `upgrade.rhai` beside its script is the one used.
    script_dir: Rc<RefCell<Option<PathBuf>>>,
    /// Where each module name was last read from, for `module_file`.
    used: Rc<RefCell<HashMap<String, String>>>,
}

impl Resolver {
    pub fn new(
        sources: Rc<Sources>,
        script_dir: Rc<RefCell<Option<PathBuf>>>,
        used: Rc<RefCell<HashMap<String, String>>>,
    ) -> Resolver {
        Resolver {
            cache: RefCell::new(HashMap::new()),
            sources,
            script_dir,
            used,
        }
    }

    /// Where `path` would be read from, given the importing script's source name.
    pub fn locate(source: Option<&str>, path: &str) -> Option<PathBuf> {
        let file = if path.ends_with(".rhai") {
            path.to_string()
        } else {
            format!("{path}.rhai")
        };
        let base = source
            .filter(|s| !s.starts_with('<'))
            .and_then(|s| Path::new(s).parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        if Path::new(&file).is_absolute() {
            return Some(PathBuf::from(file)).filter(|p| p.is_file());
        }
        // Embedded sources resolve only against the embedded stdlib, never the working directory.
        if source.is_some_and(|s| s.starts_with('<')) {
            return None;
        }
        [
            base.join(&file),
            base.join("stdlib").join(&file),
            base.join("..").join("stdlib").join(&file),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }
}

/// Where `import path` in the file named `source` is read from, and its text, as (source name, text): a
/// file beside the importing file, then beside the script being run (`script_dir`), else the embedded
/// stdlib (`<stdlib>/NAME.rhai`). `Ok(None)`: no such module. The engine imports through this, and the
/// up-front scan of a script's options follows imports through it too, so both see the same files.
pub fn module_source(
    source: Option<&str>,
    path: &str,
    script_dir: Option<&Path>,
) -> Result<Option<(String, String)>, (PathBuf, crate::files::ReadError)> {
    let file = Resolver::locate(source, path).or_else(|| {
        let as_source = script_dir?.join("script.rhai");
        Resolver::locate(as_source.to_str(), path)
    });
    if let Some(file) = file {
        return match crate::files::read_text(&file, crate::files::MAX_TEXT) {
            Ok(text) => Ok(Some((file.display().to_string(), text))),
            Err(e) => Err((file, e)),
        };
    }
    let name = path.trim_end_matches(".rhai");
    Ok(embedded::stdlib(name).map(|text| (format!("<stdlib>/{name}.rhai"), text.to_string())))
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> RhaiResult<SharedModule> {
        let name = path.trim_end_matches(".rhai");
        let script_dir = self.script_dir.borrow().clone();
        let (key, text) = match module_source(source, path, script_dir.as_deref()) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(EvalAltResult::ErrorModuleNotFound(path.into(), pos).into()),
            Err((file, e)) => {
                return Err(EvalAltResult::ErrorInModule(
                    path.into(),
                    EvalAltResult::ErrorSystem(
                        format!("cannot read `{}`", file.display()),
                        Box::new(e),
                    )
                    .into(),
                    pos,
                )
                .into())
            }
        };
        self.used.borrow_mut().insert(name.to_string(), key.clone());
        if let Some((seen, m)) = self.cache.borrow().get(&key) {
            if *seen == text {
                return Ok(m.clone());
            }
        }
        let mut ast = engine
            .compile(strip_shebang(&text))
            .map_err(|e| EvalAltResult::ErrorInModule(key.clone(), e.into(), pos))?;
        ast.set_source(key.clone());
        self.sources.add(&key, &text);
        let module: SharedModule = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| EvalAltResult::ErrorInModule(key.clone(), e, pos))?
            .into();
        self.cache.borrow_mut().insert(key, (text, module.clone()));
        Ok(module)
    }
}
