//! How the tool reaches a cluster: the admin HTTP API of each node, a Prometheus server, and the nodes'
//! hosts (over SSH, or the simulator's host endpoints). Imports the inventory, the model and `output`.

pub mod admin;
pub mod clock;
pub mod host;
pub mod http;
pub mod prometheus;
pub mod ssh;
