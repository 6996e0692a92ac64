//! The cluster model: typed values scripts see, and the runbook's policy rules (quorum, skew, upgrade path).
//! Pure data and rules; nothing here does I/O.

pub mod figures;
pub mod metrics_text;
pub mod policy;
pub mod values;

pub use values::{
    ClusterHealth, ExecOutput, Member, Metrics, NodeHealth, RaftNode, RaftStatus, RhaiResult,
    Version,
};
