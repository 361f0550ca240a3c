//! agentyard's domain: tasks and their status machine, names, ids, time, backoff, merge rules,
//! and the API's wire shapes. No IO happens here.

pub mod agent;
pub mod api;
pub mod auth;
pub mod backoff;
pub mod event;
pub mod flow;
pub mod id;
pub mod merge;
pub mod message;
pub mod names;
pub mod task;
pub mod time;
pub mod webhook;

pub use backoff::Backoff;
pub use id::{LeaseToken, TaskId};
pub use names::{AgentName, Capability, NameError, Namespace, QueueName};
pub use task::{
    Applied, Artifact, Completion, Lease, NewArtifact, NewTask, Progress, Task, TaskCommand, TaskError, TaskPatch,
    TaskStatus, TransitionError,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
