//! The operator's side of a running rollout (docs/CONTROL.md): `status` shows the cluster and the run
//! holding its lease, once or (`--watch`) until that run ends; `pause`, `resume` and `abort` leave a
//! request on that lease (`POST /admin/lease/request`) for the run to act on at its next safe point. Any
//! machine that can reach the cluster can ask: the request travels through the cluster, not through this
//! process. `read.rs` reads the cluster, `view.rs` shows one look at it, `watch.rs` keeps looking.

mod read;
mod view;
mod watch;

use serde_json::json;

use crate::error::Error;
use crate::lease;
use crate::lease::Action;
use crate::output::{outln, Format};
use crate::session::{tokio_runtime, RunOptions};
use read::{asker, open, read_lease, snapshot, tool_or_inventory, LeaseView};
use view::{cluster_flag, paused_line, Look};

/// How `status` shows the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOptions {
    /// Redraw until the run holding the lease ends (`--watch`).
    pub watch: bool,
    /// More columns, every step the lease carries (`-o wide`).
    pub wide: bool,
}

/// `neumann-script status [--watch]`: the exit code, 0 but for a watch the operator stopped (the
/// signal's code).
pub fn status(run: &RunOptions, opts: &StatusOptions) -> Result<i32, Error> {
    let (cluster, name) = open(run)?;
    let tokio = tokio_runtime()?;
    if opts.watch {
        return watch::watch(&tokio, &cluster, &name, run, opts.wide);
    }
    let snap = tokio.block_on(snapshot(&cluster, &name))?;
    let look = Look {
        name: &name,
        snap: &snap,
        inventory: &cluster.inventory,
        wide: opts.wide,
    };
    if run.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&view::json(&look)).unwrap_or_default()
        );
    } else {
        for line in view::text(&look, &cluster_flag(&name), false) {
            outln!("{line}");
        }
    }
    Ok(0)
}

/// `neumann-script pause|resume|abort`: leaves the request on the lease for its holder.
pub fn request(run: &RunOptions, action: Action, reason: &str) -> Result<(), Error> {
    let (cluster, name) = open(run)?;
    let tokio = tokio_runtime()?;
    let no_run = || {
        Error::Usage(format!(
            "no run in progress on cluster `{name}`: nobody holds its run lease, so there is nothing \
             to {action} (a run takes the lease at its first change; check the --cluster FILE)"
        ))
    };
    let held = match tokio.block_on(read_lease(&cluster))? {
        LeaseView::Held(l) => l,
        LeaseView::Free => return Err(no_run()),
        LeaseView::NoApi(_) => {
            return Err(Error::Tool(format!(
                "cluster `{name}` serves no run lease (GET /admin/lease: 404): runs there hold a lock \
                 file on their own machine and cannot be asked to {action}; use Ctrl-C in the run's \
                 terminal"
            )))
        }
    };
    let by = asker();
    let answer = match tokio.block_on(cluster.admin.lease_request(action.as_str(), &by, reason)) {
        Ok(a) => a,
        // The run ended between the two calls.
        Err(e) if e.status() == Some(404) => return Err(no_run()),
        Err(e) => {
            return Err(tool_or_inventory(
                e,
                &format!("cluster `{name}`: the {action} request failed"),
            ))
        }
    };
    if run.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": name,
                "request": answer.get("request"),
                "run": held,
            }))
            .unwrap_or_default()
        );
        return Ok(());
    }
    let whose = lease::describe(&held);
    let paused = held.paused.is_some();
    let said = match action {
        Action::Pause if paused => format!(
            "asked {whose} to pause; it is paused already ({})",
            held.paused
                .as_ref()
                .map(|p| paused_line(p, crate::output::unix_now()))
                .unwrap_or_default()
        ),
        Action::Pause => format!(
            "asked {whose} to pause at its next safe point (a step boundary, checkpoint(), gate(), or \
             within a second during a wait such as a soak; never between a node's stop and its start)"
        ),
        Action::Resume if paused => {
            format!("asked {whose} to resume; it goes on within about a second")
        }
        Action::Resume => format!(
            "asked {whose} to resume; it is not paused, so the request only cancels a pause it has not \
             taken yet"
        ),
        Action::Abort => format!(
            "asked {whose} to abort at its next safe point: it finishes any node mid-procedure, stops \
             safely (exit 3) and reports the cluster's state"
        ),
    };
    outln!("{said}");
    outln!(
        "follow it with: neumann-script {} status --watch",
        cluster_flag(&name)
    );
    Ok(())
}
