//! sprig: a Greengrass v1–compatible edge core in one small, static, single-threaded binary.
//!
//! The layers, bottom-up (a module uses only its own layer or a lower one):
//!
//! * **L0, pure data**: [`limits`] (every capacity, named), [`json`] (bounded JSON reader),
//!   [`config`] (config.json and group.json, validated), [`topic`] (MQTT topic names and filters).
//! * **L1, sans-IO cores**: [`router`] (managed subscriptions: who may send what to whom),
//!   [`workq`] (the one bounded work queue), [`spool`] (cloud-bound store-and-forward), [`shadow`] (the local shadow
//!   service: requests → replies, stored documents, cloud sync).
//! * **L2, the async shell** on one `async_executor::LocalExecutor` driven by `async_io::block_on`
//!   on the main thread: [`broker`] (TLS MQTT for group devices), [`cloud`] (link to AWS IoT Core),
//!   [`app`] (wires them together), [`daemon`] (start/stop, signals, pid file), [`logging`]
//!   (the Greengrass log layout), [`sys`] (the only `unsafe`: libc calls), [`pki`]
//!   (certificates), [`demo`], [`status`], [`check`], [`cli`].
//!
//! ARCHITECTURE.md draws the map and the path of one message.

// All `unsafe` lives in `sys`, behind safe functions with `// SAFETY:` notes.
#![deny(unsafe_code)]

// L0
pub mod config;
pub mod json;
pub mod limits;
pub mod topic;

// L1
pub mod router;
pub mod shadow;
pub mod spool;
pub mod workq;

// L2
pub mod app;
pub mod broker;
pub mod check;
pub mod cli;
pub mod cloud;
pub mod daemon;
pub mod demo;
pub mod deploy;
/// The local Discovery API (issue 11): sans-IO `respond` + the async `server`.
pub mod discovery;
pub mod ipc;
pub mod lambda;
/// The accept side of the discovery, stream manager and Lambda IPC servers.
pub mod listen;
pub mod logging;
pub mod pki;
pub mod status;
#[cfg(feature = "stream-manager")]
pub mod streams;
#[allow(unsafe_code)]
pub mod sys;
pub mod wake;
