//! Composition: builds the router, work queue, broker and cloud link from the config and runs
//! them on the one executor.
//!
//! Not built yet: [`run`] only waits for shutdown. The broker area replaces its body; the
//! signature is what `daemon` calls and stays stable.

use async_executor::LocalExecutor;

use crate::config::{Config, Group};
use crate::daemon::{ChildExits, Shutdown};

/// What the daemon hands the application once config, group and logging are up.
pub struct Core {
    pub config: Config,
    pub group: Group,
    /// Children reaped on SIGCHLD (the Lambda runner's input).
    pub child_exits: ChildExits,
}

/// Why the application stopped other than by shutdown.
#[derive(Debug)]
pub enum AppError {
    /// A component could not start (a port in use, a missing certificate, ...). The message is
    /// written to crash.log and stderr and the daemon exits 1.
    Startup(String),
    /// A component failed while running.
    Fatal(String),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Startup(m) => write!(f, "startup failed: {m}"),
            AppError::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

/// Runs every component on `ex` until `shutdown` is triggered, then returns Ok. Spawned tasks
/// must stop promptly on shutdown (the daemon exits [`crate::limits::SHUTDOWN_GRACE`] later
/// regardless).
pub async fn run(core: Core, ex: &LocalExecutor<'_>, shutdown: Shutdown) -> Result<(), AppError> {
    let _ = (core, ex);
    shutdown.wait().await;
    Ok(())
}
