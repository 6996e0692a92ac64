//! The inventory: how the tool finds a cluster.
//!
//! Read from TOML, validated completely before anything talks to a node, so a typo in a node id or a
//! URL is an exit-2 error naming the file and the field rather than a failure halfway through a runbook.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::files::{self, ReadError};
use crate::secret::Secret;

pub mod ssh;

/// The default inventory file looked for in the working directory.
pub const DEFAULT_FILE: &str = "neumann-cluster.toml";
/// The environment variable naming an inventory file.
pub const ENV_VAR: &str = "NEUMANN_CLUSTER";
/// Neumann's admin port, used when a node names only its host.
pub const ADMIN_PORT: u16 = 9090;

/// Service command templates, with the runbook's commands as defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    pub stop: String,
    pub start: String,
    pub restart: String,
    pub install: String,
    /// Installs a version beside the running one, under its own root, while the node serves.
    pub stage: String,
    /// Points the service at a staged version; it runs at the next start.
    pub activate: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            stop: "systemctl stop neumann".into(),
            start: "systemctl start neumann".into(),
            restart: "systemctl restart neumann".into(),
            install: "cargo install neumann --version {version}".into(),
            stage: "cargo install neumann --version {version} --root /opt/neumann/{version}".into(),
            activate: "ln -sfn /opt/neumann/{version}/bin/neumann /usr/local/bin/neumann".into(),
        }
    }
}

/// One node of the inventory, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    /// Base URL of the node's admin API, without a trailing slash.
    pub admin_url: String,
    /// `user@host:port` for host operations over SSH.
    pub ssh: Option<ssh::SshTarget>,
    pub templates: Templates,
    /// The `instance` label this node's metrics carry in Prometheus (default: host:port of admin_url).
    pub prometheus_instance: String,
    /// `labels = { zone = "eu-1a" }`: what the stock runbooks select and order nodes by.
    pub labels: BTreeMap<String, String>,
}

/// `[blue_green]`: this inventory is the blue cluster; `green` is the other one's inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreen {
    /// The green cluster's inventory (resolved against this inventory's directory).
    pub green: PathBuf,
    /// Runs on this machine to move client traffic; `{to}` becomes "green" or "blue". May be left out for
    /// a simulated cluster, whose simulator then records the switch.
    pub switch: Option<String>,
}

/// A validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Where it came from, for messages: a file path or "embedded simulator".
    pub source: PathBuf,
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    /// Bearer token for the admin API: never printed, and removed from everything the tool writes.
    pub token: Option<Secret>,
    /// The simulator's control address when the cluster is simulated.
    pub sim_control: Option<String>,
    /// A rehearsal's twin: the simulator fast-forwards the script's own waits (`Clock::sleep`) instead of
    /// pacing them at its speed, so a day-long canary watch rehearses in seconds. Never from a file.
    pub sim_warp: bool,
    /// A Prometheus server that scrapes this cluster, for `metrics::query` and past windows.
    pub prometheus_url: Option<String>,
    /// The other side of a blue-green pair and how to move client traffic between the two.
    pub blue_green: Option<BlueGreen>,
    /// How to reach hosts over SSH (`[ssh]`).
    pub ssh: ssh::SshSettings,
    /// `[notify] webhooks`: receivers of the run's events, checked by `notify::check_url`.
    pub webhooks: Vec<String>,
    /// `[notify] notify_on`: the event kinds posted (`None`: all), checked by `notify::check_kinds`.
    pub notify_on: Option<Vec<String>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    defaults: Option<RawTemplates>,
    sim: Option<RawSim>,
    blue_green: Option<RawBlueGreen>,
    #[serde(default)]
    ssh: RawSsh,
    notify: Option<RawNotify>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    webhooks: Vec<String>,
    notify_on: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    connect_timeout_secs: Option<f64>,
    request_timeout_secs: Option<f64>,
    prometheus_url: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    stop: Option<String>,
    start: Option<String>,
    restart: Option<String>,
    install: Option<String>,
    stage: Option<String>,
    activate: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    /// "strict" (default) or "accept-new".
    host_key_checking: Option<String>,
    known_hosts: Option<PathBuf>,
    key: Option<PathBuf>,
    config: Option<PathBuf>,
    jump: Option<String>,
    connect_timeout_secs: Option<f64>,
    max_concurrent: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlueGreen {
    green: PathBuf,
    switch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSim {
    control: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    host: Option<String>,
    admin_url: Option<String>,
    ssh: Option<String>,
    prometheus_instance: Option<String>,
    stop: Option<String>,
    start: Option<String>,
    restart: Option<String>,
    install: Option<String>,
    stage: Option<String>,
    activate: Option<String>,
    labels: Option<toml::Table>,
}

impl RawTemplates {
    fn over(&self, base: &Templates) -> Templates {
        Templates {
            stop: self.stop.clone().unwrap_or_else(|| base.stop.clone()),
            start: self.start.clone().unwrap_or_else(|| base.start.clone()),
            restart: self.restart.clone().unwrap_or_else(|| base.restart.clone()),
            install: self.install.clone().unwrap_or_else(|| base.install.clone()),
            stage: self.stage.clone().unwrap_or_else(|| base.stage.clone()),
            activate: self
                .activate
                .clone()
                .unwrap_or_else(|| base.activate.clone()),
        }
    }
}

impl Inventory {
    /// Finds the inventory the documented way: `--cluster FILE`, else `$NEUMANN_CLUSTER`, else
    /// `./neumann-cluster.toml`. Returns `Ok(None)` when none was named and the default file is absent,
    /// so commands that never touch a cluster still run.
    pub fn locate(explicit: Option<&Path>) -> Result<Option<Inventory>, Error> {
        if let Some(path) = explicit {
            return Inventory::load(path).map(Some);
        }
        if let Some(path) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
            return Inventory::load(Path::new(&path)).map(Some);
        }
        let default = Path::new(DEFAULT_FILE);
        if default.exists() {
            return Inventory::load(default).map(Some);
        }
        Ok(None)
    }

    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, Error> {
        let text = files::read_text(path, files::MAX_TEXT).map_err(|e| Error::Inventory {
            path: path.to_path_buf(),
            message: match e {
                ReadError::NotFound => {
                    "no such file (pass --cluster FILE, set NEUMANN_CLUSTER, or use --sim)".into()
                }
                ReadError::Refused(m) => m,
            },
        })?;
        Inventory::parse(&text, path)
    }

    /// Parses and validates inventory text; `source` names it in messages.
    pub fn parse(text: &str, source: &Path) -> Result<Inventory, Error> {
        let bad = |message: String| Error::Inventory {
            path: source.to_path_buf(),
            message,
        };
        let raw: RawInventory = toml::from_str(text).map_err(|e| bad(toml_message(text, &e)))?;
        if raw.nodes.is_empty() {
            return Err(bad(
                "it names no nodes: add at least one `[[nodes]]` table with an `id`".into(),
            ));
        }
        let defaults = raw
            .defaults
            .clone()
            .unwrap_or_default()
            .over(&Templates::default());
        let mut seen = HashSet::new();
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for (i, n) in raw.nodes.iter().enumerate() {
            let at = format!("node #{} (`{}`)", i + 1, n.id);
            if n.id.is_empty()
                || !n
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad(format!(
                    "{at}: the id must be letters, digits, `-`, `_` or `.`"
                )));
            }
            if !seen.insert(n.id.clone()) {
                return Err(bad(format!("node id `{}` appears twice", n.id)));
            }
            let (field, admin_url) = match (&n.admin_url, &n.host) {
                (Some(url), _) => ("admin_url", url.trim_end_matches('/').to_string()),
                (None, Some(host)) => ("host", format!("http://{host}:{ADMIN_PORT}")),
                (None, None) => {
                    return Err(bad(format!("{at}: give `admin_url` or `host`")));
                }
            };
            check_admin_url(&admin_url).map_err(|why| bad(format!("{at}: {field} {why}")))?;
            let templates = RawTemplates {
                stop: n.stop.clone(),
                start: n.start.clone(),
                restart: n.restart.clone(),
                install: n.install.clone(),
                stage: n.stage.clone(),
                activate: n.activate.clone(),
            }
            .over(&defaults);
            // Each version-changing template must say which version, or every node would get the same build.
            for (name, t) in [
                ("install", &templates.install),
                ("stage", &templates.stage),
                ("activate", &templates.activate),
            ] {
                if !t.contains("{version}") {
                    return Err(bad(format!(
                        "{at}: the {name} template `{t}` must contain `{{version}}`"
                    )));
                }
            }
            let prometheus_instance = n
                .prometheus_instance
                .clone()
                .or_else(|| instance_of(&admin_url))
                .unwrap_or_default();
            let ssh = n
                .ssh
                .as_deref()
                .map(ssh::SshTarget::parse)
                .transpose()
                .map_err(|e| bad(format!("{at}: {e}")))?;
            let labels = match &n.labels {
                Some(t) => labels(t).map_err(|e| bad(format!("{at}: {e}")))?,
                None => BTreeMap::new(),
            };
            nodes.push(NodeSpec {
                id: n.id.clone(),
                admin_url,
                ssh,
                templates,
                prometheus_instance,
                labels,
            });
        }
        let token = match (&raw.cluster.token_env, &raw.cluster.token_file) {
            (Some(_), Some(_)) => {
                return Err(bad("give `token_env` or `token_file`, not both".into()))
            }
            (Some(var), None) => {
                let value = std::env::var(var).map_err(|_| {
                    bad(format!(
                        "`token_env` names `{var}`, but that environment variable is not set"
                    ))
                })?;
                Some(Secret::new(
                    check_token(
                        &value,
                        &format!("token_env: the environment variable `{var}`"),
                    )
                    .map_err(bad)?,
                ))
            }
            (None, Some(file)) => {
                let file = if file.is_relative() {
                    source.parent().unwrap_or(Path::new(".")).join(file)
                } else {
                    file.clone()
                };
                let what = format!("token_file `{}`", file.display());
                // A token is short: a bound this size still catches `/dev/zero` or a wrong path at once.
                let t =
                    files::read_text(&file, 64 << 10).map_err(|e| bad(format!("{what}: {e}")))?;
                let token = Secret::new(check_token(&t, &what).map_err(bad)?);
                if let Some(warning) = open_to_others(&file) {
                    warn_once(&file, &warning);
                }
                Some(token)
            }
            (None, None) => None,
        };
        let secs = |v: Option<f64>, default: f64, key: &str| -> Result<Duration, Error> {
            let s = v.unwrap_or(default);
            if s.is_finite() && s > 0.0 && s < 86_400.0 {
                Ok(Duration::from_secs_f64(s))
            } else {
                Err(bad(format!(
                    "`{key}` must be a positive number of seconds, not {s}"
                )))
            }
        };
        let webhooks = raw.notify.as_ref().map_or(&[][..], |n| &n.webhooks[..]);
        for (i, url) in webhooks.iter().enumerate() {
            crate::notify::check_url(url)
                .map_err(|e| bad(format!("[notify] webhooks #{}: {e}", i + 1)))?;
        }
        let webhooks = webhooks.to_vec();
        let notify_on = raw.notify.as_ref().and_then(|n| n.notify_on.clone());
        if let Some(kinds) = &notify_on {
            crate::notify::check_kinds(kinds)
                .map_err(|e| bad(format!("[notify] notify_on: {e}")))?;
        }
        Ok(Inventory {
            webhooks,
            notify_on,
            source: source.to_path_buf(),
            name: raw.cluster.name.clone().unwrap_or_else(|| "neumann".into()),
            nodes,
            token,
            ssh: {
                use ssh::{HostKeyPolicy, SshSettings};
                let r = &raw.ssh;
                let near = |p: &PathBuf| resolve_path(p, source);
                let defaults = SshSettings::default();
                SshSettings {
                    host_keys: match r.host_key_checking.as_deref() {
                        None | Some("strict") => HostKeyPolicy::Strict,
                        Some("accept-new") => HostKeyPolicy::AcceptNew,
                        Some(other) => {
                            return Err(bad(format!("[ssh] host_key_checking is \"strict\" or \"accept-new\", not \"{other}\"")))
                        }
                    },
                    known_hosts: r.known_hosts.as_ref().map(near),
                    key: r.key.as_ref().map(near),
                    config: r.config.as_ref().map(near),
                    jump: r.jump.clone(),
                    connect_timeout: secs(r.connect_timeout_secs, defaults.connect_timeout.as_secs_f64(), "[ssh] connect_timeout_secs")?,
                    max_concurrent: match r.max_concurrent {
                        Some(0) => return Err(bad("[ssh] max_concurrent must be at least 1".into())),
                        Some(n) => n,
                        None => defaults.max_concurrent,
                    },
                }
            },
            blue_green: raw.blue_green.as_ref().map(|b| BlueGreen {
                green: if b.green.is_relative() {
                    source.parent().unwrap_or(Path::new(".")).join(&b.green)
                } else {
                    b.green.clone()
                },
                switch: b.switch.clone(),
            }),
            sim_control: raw.sim.map(|s| s.control),
            sim_warp: false,
            prometheus_url: match &raw.cluster.prometheus_url {
                Some(u) => {
                    prometheus_query_url(u).map_err(|e| bad(format!("prometheus_url: {e}")))?;
                    Some(u.clone())
                }
                None => None,
            },
            connect_timeout: secs(
                raw.cluster.connect_timeout_secs,
                2.0,
                "connect_timeout_secs",
            )?,
            request_timeout: secs(
                raw.cluster.request_timeout_secs,
                10.0,
                "request_timeout_secs",
            )?,
        })
    }

    /// The node of that id, or an error that lists the ids there are.
    pub fn node(&self, id: &str) -> Result<&NodeSpec, String> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
            format!("unknown node `{id}`: the inventory has {}", ids.join(", "))
        })
    }
}

/// A node's `labels` table: names as a node id is spelled, values strings. A number or a table would
/// compare differently from what `--set order_by` and `node::labels` hand a script, so it is refused here.
fn labels(t: &toml::Table) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in t {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "label name `{k}` must be letters, digits, `-`, `_` or `.`"
            ));
        }
        match v {
            toml::Value::String(s) if !s.trim().is_empty() => {
                out.insert(k.clone(), s.clone());
            }
            toml::Value::String(_) => {
                return Err(format!(
                    "label `{k}` is empty: give it a value or leave it out"
                ))
            }
            other => {
                return Err(format!(
                    "label `{k}` must be a string in quotes, not the {} {other}",
                    other.type_str()
                ))
            }
        }
    }
    Ok(out)
}

/// An admin URL is the scheme, host and port of a node's admin API and nothing else: a path, query or
/// fragment would be glued to every endpoint (`...?x=1/health`), and credentials would be printed wherever
/// the address is (errors, `members()`, the REPL's `nodes`). The message never repeats a password.
fn check_admin_url(url: &str) -> Result<(), String> {
    let shown = shown_url(url);
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "`{shown}` carries a user name or password: they would be printed in messages; remove them and give the admin token with [cluster] token_env or token_file"
        ));
    }
    if (u.scheme() != "http" && u.scheme() != "https") || u.host().is_none() {
        return Err(format!(
            "`{shown}` must be an http:// or https:// URL with a host"
        ));
    }
    let extra = [
        (u.path() != "/").then_some("a path"),
        u.query().is_some().then_some("a query"),
        u.fragment().is_some().then_some("a fragment"),
    ];
    let extra: Vec<&str> = extra.into_iter().flatten().collect();
    if !extra.is_empty() {
        return Err(format!(
            "`{shown}` has {}: give the scheme, host and port only, such as `http://10.0.0.1:9090`",
            extra.join(" and ")
        ));
    }
    Ok(())
}

/// `url` as a message may show it: anything between `://` and an `@` before the host replaced by `***`,
/// and the value of each query and fragment parameter by `<redacted>` (`?token=<redacted>`), since that
/// is where a URL carries a secret. Used for URLs that are refused, which are never registered as secrets.
fn shown_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (base, tail) = url.split_at(end);
    let mut out = hide_userinfo(base);
    let (query, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    for (mark, part) in [("?", query), ("#", fragment)] {
        if let Some(body) = part.strip_prefix(mark) {
            out.push_str(mark);
            out.push_str(&hide_values(body));
        }
    }
    out
}

fn hide_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// `a=1&b` as `a=<redacted>&<redacted>`.
fn hide_values(params: &str) -> String {
    let redacted = crate::secret::REDACTED;
    params
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) => format!("{k}={redacted}"),
            None if p.is_empty() => String::new(),
            None => redacted.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The warning for a token file that users other than its owner may read (or change), the way ssh
/// treats a private key; `None` when only its owner can.
fn open_to_others(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (false, false) => return None,
        (true, false) => "its group",
        (false, true) => "other users",
        (true, true) => "its group and other users",
    };
    let f = file.display();
    Some(format!(
        "token_file `{f}` is open to {who} (mode {mode:04o}): whoever can read it can use the cluster's admin API. \
         Make it readable by you alone: chmod 600 {}",
        shlex::try_quote(&f.to_string()).unwrap_or_else(|_| f.to_string().into())
    ))
}

/// Prints `warning` once per token file in this process (an inventory may be read more than once).
fn warn_once(file: &Path, warning: &str) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|p| p == file) {
        warned.push(file.to_path_buf());
        crate::output::Output::new().warn(warning);
    }
}

/// The admin token as read from a file or the environment: one trailing newline is what editors and
/// `echo` leave and is dropped; anything else that cannot travel in an HTTP header is refused here rather
/// than after a round of retries.
fn check_token(raw: &str, what: &str) -> Result<String, String> {
    let t = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(raw);
    if t.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if t.contains(['\n', '\r']) {
        return Err(format!(
            "{what} holds more than one line: it must hold the token alone (one trailing newline is fine)"
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} holds a space or control character: an admin token has none"
        ));
    }
    Ok(t.to_string())
}

/// A path from the inventory: `~/` is the user's home, relative paths are relative to the inventory's
/// directory (so an inventory and its key or known_hosts can travel together).
fn resolve_path(p: &Path, inventory: &Path) -> PathBuf {
    if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), std::env::var_os("HOME")) {
        return PathBuf::from(home).join(rest);
    }
    if p.is_relative() {
        inventory.parent().unwrap_or(Path::new(".")).join(p)
    } else {
        p.to_path_buf()
    }
}

/// toml's messages carry a byte span; operators want a line number.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

/// The `instance` label Prometheus gives a target scraped at this admin URL: `host:port`, the port
/// defaulted from the scheme the way Prometheus does.
pub fn instance_of(admin_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(admin_url).ok()?;
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", url.port_or_known_default()?))
}

/// The query endpoint under a Prometheus base URL, refusing what cannot be one.
pub fn prometheus_query_url(base_url: &str) -> Result<reqwest::Url, String> {
    let bad = |why: &str| format!("prometheus_url `{}`: {why}", shown_url(base_url));
    // `host:9090` alone is the usual slip; the URL parser would call it "relative URL without a base".
    if !base_url.contains("://") {
        return Err(bad("must start with http:// or https://"));
    }
    let mut url = reqwest::Url::parse(base_url.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must not carry a query or fragment (give the server's base URL)",
        ));
    }
    // The path segments API keeps a prefix intact and avoids `//` whether or not the base ends in `/`.
    url.path_segments_mut()
        .map_err(|()| bad("cannot take a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "query"]);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, Error> {
        Inventory::parse(text, Path::new("c.toml"))
    }

    #[test]
    fn host_gives_the_default_admin_port_and_templates_default_to_the_runbook() {
        let inv = parse("[[nodes]]\nid = \"node1\"\nhost = \"10.0.0.1\"\n").unwrap();
        assert_eq!(inv.nodes[0].admin_url, "http://10.0.0.1:9090");
        assert_eq!(inv.nodes[0].templates.stop, "systemctl stop neumann");
        assert_eq!(
            inv.nodes[0].templates.install,
            "cargo install neumann --version {version}"
        );
        assert_eq!(inv.request_timeout, Duration::from_secs(10));
    }

    #[test]
    fn labels_are_string_values_with_plain_names() {
        let inv = parse(
            "[[nodes]]\nid = \"a\"\nhost = \"h\"\nlabels = { zone = \"eu-1a\", rack = \"r7\" }\n[[nodes]]\nid = \"b\"\nhost = \"h2\"\n",
        )
        .unwrap();
        assert_eq!(inv.nodes[0].labels["zone"], "eu-1a");
        assert_eq!(inv.nodes[0].labels["rack"], "r7");
        assert!(inv.nodes[1].labels.is_empty());
        for (labels, needle) in [
            (
                "{ zone = 1 }",
                "label `zone` must be a string in quotes, not the integer 1",
            ),
            ("{ zone = \"\" }", "label `zone` is empty"),
            ("{ \"my zone\" = \"x\" }", "label name `my zone` must be"),
            ("{ zone = { a = \"b\" } }", "must be a string"),
            (
                "\"eu-1a\"",
                "line 4: invalid type: string \"eu-1a\", expected a map",
            ),
        ] {
            let e = parse(&format!(
                "[[nodes]]\nid = \"a\"\nhost = \"h\"\nlabels = {labels}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(needle), "{labels}: {e}");
            assert!(e.contains("c.toml"), "{e}");
        }
    }

    #[test]
    fn defaults_and_per_node_templates_override_in_order() {
        let inv = parse(
            "[defaults]\nstop = \"svc stop\"\n[[nodes]]\nid = \"a\"\nhost = \"h\"\nstart = \"svc go\"\n[[nodes]]\nid = \"b\"\nhost = \"h2\"\n",
        )
        .unwrap();
        assert_eq!(inv.nodes[0].templates.stop, "svc stop");
        assert_eq!(inv.nodes[0].templates.start, "svc go");
        assert_eq!(inv.nodes[1].templates.start, "systemctl start neumann");
    }

    #[test]
    fn bad_inventories_name_the_problem() {
        let cases = [
            ("", "names no nodes"),
            ("[[nodes]]\nid = \"a\"\n", "give `admin_url` or `host`"),
            ("[[nodes]]\nid = \"a\"\nhost = \"h\"\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "appears twice"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"ftp://x\"\n", "must be an http"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"not a url\"\n", "is not a URL"),
            ("[[nodes]]\nid = \"a b\"\nhost = \"h\"\n", "the id must be"),
            ("[[nodes]]\nid = \"a\"\nhost = \"h\"\ninstall = \"cargo install neumann\"\n", "{version}"),
            ("[[nodes]]\nid = \"a\"\nhots = \"h\"\n", "line 3: unknown field `hots`"),
            ("[[nodes]\nid = 1\n", "line 1"),
            ("[cluster]\ntoken_env = \"NEUMANN_TEST_SURELY_UNSET\"\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "is not set"),
            ("[cluster]\nrequest_timeout_secs = -1\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "positive number"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"http://admin:pw@h:9090\"\n", "admin_url `http://***@h:9090` carries a user name or password"),
            ("[[nodes]]\nid = \"a\"\nhost = \"admin@h\"\n", "host `http://***@h:9090` carries"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"http://h:9090/admin\"\n", "has a path: give the scheme, host and port only"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"http://h:9090?x=1\"\n", "has a query"),
            ("[[nodes]]\nid = \"a\"\nadmin_url = \"http://h:9090#f\"\n", "has a fragment"),
            ("[notify]\nwebhooks = [\"https://ok/x\", \"slack.com/T0/sekrit\"]\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "[notify] webhooks #2: webhook `…` is not a URL"),
            ("[notify]\nwebhooks = \"https://h/x\"\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "invalid type"),
            ("[notify]\nhooks = []\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "unknown field `hooks`"),
            ("[notify]\nnotify_on = [\"run_start\", \"steps\"]\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "[notify] notify_on: unknown event kind `steps`"),
            ("[notify]\nnotify_on = []\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n", "[notify] notify_on: no event kind chosen"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with("inventory `c.toml`: "), "{err}");
            assert!(
                err.contains(want),
                "for {text:?} wanted {want:?} in {err:?}"
            );
        }
    }

    #[test]
    fn webhooks_are_read_from_notify() {
        let inv = parse("[notify]\nwebhooks = [\"https://hooks.slack.com/services/T0/B0/x\", \"http://10.0.0.9:8080/\"]\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n").unwrap();
        assert_eq!(inv.webhooks.len(), 2);
        assert!(parse("[[nodes]]\nid = \"a\"\nhost = \"h\"\n")
            .unwrap()
            .webhooks
            .is_empty());
        assert_eq!(inv.notify_on, None);
        let inv = parse("[notify]\nwebhooks = [\"http://10.0.0.9:8080/\"]\nnotify_on = [\"gate\", \"run_end\"]\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n").unwrap();
        assert_eq!(inv.notify_on, Some(vec!["gate".into(), "run_end".into()]));
    }

    #[test]
    fn a_password_is_never_repeated() {
        let err = parse("[[nodes]]\nid = \"a\"\nadmin_url = \"http://admin:s3cret@h :9090\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(shown_url("https://u:p@h:1/x@y"), "https://***@h:1/x@y");
        assert_eq!(shown_url("http://h:1"), "http://h:1");
        assert_eq!(
            shown_url("http://u@h:1/p?token=abc&x&y=#frag=z"),
            "http://***@h:1/p?token=<redacted>&<redacted>&y=<redacted>#frag=<redacted>"
        );
        // After `#` all is fragment: its parameters are split the same way.
        assert_eq!(
            shown_url("http://h:1#a?b=c&t"),
            "http://h:1#a?b=<redacted>&<redacted>"
        );
    }

    #[test]
    fn a_query_in_a_refused_url_is_not_repeated() {
        for text in [
            "[[nodes]]\nid = \"a\"\nadmin_url = \"http://h:9090/?token=qs-s3cret-1\"\n",
            "[[nodes]]\nid = \"a\"\nadmin_url = \"http://h:9090#access_token=qs-s3cret-1\"\n",
            "[cluster]\nprometheus_url = \"http://p:9090/?token=qs-s3cret-1\"\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(!err.contains("qs-s3cret-1"), "{err}");
            assert!(err.contains("=<redacted>`"), "{err}");
        }
    }

    #[test]
    fn a_token_file_open_to_others_is_named_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin token");
        std::fs::write(&file, "t0k\n").unwrap();
        let mode = |m: u32| {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m)).unwrap();
            open_to_others(&file)
        };
        assert_eq!(mode(0o600), None);
        assert_eq!(mode(0o400), None);
        let w = mode(0o644).unwrap();
        assert!(
            w.starts_with(&format!(
                "token_file `{}` is open to its group and other users (mode 0644)",
                file.display()
            )) && w.ends_with(&format!("chmod 600 '{}'", file.display())),
            "{w}"
        );
        assert!(mode(0o640)
            .unwrap()
            .contains("open to its group (mode 0640)"));
        assert!(mode(0o604)
            .unwrap()
            .contains("open to other users (mode 0604)"));
        // Still read: the warning is what ssh would say of a key, without refusing it.
        let inv = Inventory::parse(
            &format!(
                "[cluster]\ntoken_file = {:?}\n[[nodes]]\nid = \"a\"\nhost = \"h\"\n",
                file.display().to_string()
            ),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(inv.token.unwrap().expose(), "t0k");
    }

    #[test]
    fn tokens_lose_one_trailing_newline_and_nothing_else() {
        assert_eq!(check_token("abc\n", "t").unwrap(), "abc");
        assert_eq!(check_token("abc\r\n", "t").unwrap(), "abc");
        assert_eq!(check_token("abc", "t").unwrap(), "abc");
        for (raw, want) in [
            ("abc\ndef\n", "more than one line"),
            ("abc\n\n", "more than one line"),
            ("\n", "is empty"),
            ("ab c", "space or control"),
            ("abc\t\n", "space or control"),
        ] {
            let e = check_token(raw, "token_file `t`").unwrap_err();
            assert!(
                e.starts_with("token_file `t` ") && e.contains(want),
                "{raw:?}: {e}"
            );
        }
    }

    #[test]
    fn node_lookup_is_exact_and_lists_the_ids() {
        let mut text = String::new();
        for i in 1..=11 {
            text.push_str(&format!("[[nodes]]\nid = \"node{i}\"\nhost = \"h{i}\"\n"));
        }
        let inv = parse(&text).unwrap();
        assert_eq!(inv.node("node1").unwrap().admin_url, "http://h1:9090");
        assert_eq!(inv.node("node10").unwrap().admin_url, "http://h10:9090");
        let err = inv.node("node12").unwrap_err();
        assert!(
            err.starts_with("unknown node `node12`: the inventory has node1, node2"),
            "{err}"
        );
    }

    #[test]
    fn paths_resolve_against_home_and_the_inventory() {
        let inv = Path::new("/etc/neumann/prod.toml");
        assert_eq!(
            resolve_path(Path::new("keys/id"), inv),
            PathBuf::from("/etc/neumann/keys/id")
        );
        assert_eq!(
            resolve_path(Path::new("/abs/id"), inv),
            PathBuf::from("/abs/id")
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                resolve_path(Path::new("~/.ssh/id"), inv),
                PathBuf::from(home).join(".ssh/id")
            );
        }
    }

    #[test]
    fn missing_file_says_how_to_name_one() {
        let err = Inventory::load(Path::new("/nonexistent/c.toml")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--sim"), "{err}");
    }

    #[test]
    fn instances_follow_prometheus_defaults() {
        assert_eq!(
            instance_of("http://10.0.0.2:9090").as_deref(),
            Some("10.0.0.2:9090")
        );
        assert_eq!(
            instance_of("https://node1.example.com/").as_deref(),
            Some("node1.example.com:443")
        );
        assert_eq!(instance_of("http://node1").as_deref(), Some("node1:80"));
        assert_eq!(
            instance_of("http://[::1]:9090").as_deref(),
            Some("[::1]:9090")
        );
        assert_eq!(instance_of("not a url"), None);
    }
}
