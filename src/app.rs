//! Composition: builds the router, work queue, broker and cloud link from the config and runs
//! them on the one executor.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_executor::LocalExecutor;
use async_io::Timer;
use futures_lite::future;

use bytes::Bytes;

use crate::broker::{self, Hub, ServerConfigSlot};
use crate::cloud::{self, Cloud, CloudSettings};
use crate::config::Endpoint;
use crate::config::{Config, Group};
use crate::daemon::{ChildExits, Shutdown};
use crate::deploy::apply::Applier;
use crate::discovery;
use crate::limits;
use crate::pki;
use crate::shadow::ShadowService;
use crate::status::StatusBoard;
use crate::workq::SharedQueue;
use crate::workq::WorkItem;

/// What the daemon hands the application once config, group and logging are up.
pub struct Core {
    pub config: Config,
    pub group: Group,
    /// Children reaped on SIGCHLD (the Lambda runner's input).
    pub child_exits: ChildExits,
    /// Notified on SIGHUP: a deployment or reset was installed (crate::deploy::apply).
    pub reload: Rc<crate::workq::Notify>,
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

/// Runs every component on `ex` until `shutdown` is triggered, then returns Ok.
///
/// The message path (ARCHITECTURE.md "The path of a message"): broker connections and the
/// cloud link push [`crate::workq::WorkItem`]s into the one [`SharedQueue`]; the dispatcher task routes each
/// along the group's subscriptions to device outboxes, the cloud sink, or (not built yet)
/// Lambdas and the shadow service.
pub async fn run(core: Core, ex: &LocalExecutor<'_>, shutdown: Shutdown) -> Result<(), AppError> {
    let Core {
        config,
        group,
        child_exits,
        reload,
    } = core;
    let config = &config;
    let identity = pki::server_identity(config, SystemTime::now())
        .map_err(|e| AppError::Startup(e.to_string()))?;
    let tls = tls_config(&identity)?;
    let port = config.core_thing.gg_mqtt_port;
    let listener = broker::bind(port).map_err(|e| {
        AppError::Startup(format!(
            "cannot listen on 0.0.0.0:{port} (coreThing.ggMqttPort): {e}"
        ))
    })?;
    log::info!(
        "local MQTT broker on 0.0.0.0:{port}: {} devices, {} subscriptions in the group",
        group.devices.len(),
        group.subscriptions.len()
    );

    let queue = SharedQueue::new(
        config.runtime.max_work_item_count as usize,
        limits::MAX_WORK_QUEUE_BYTES,
    );
    let hub = Hub::new(&group, queue.clone(), config.sprig.max_connections);
    let status = Rc::new(StatusBoard::new(&config.write_dir, hub.clone()));

    // The local shadow service (issue 9): requests routed to GGShadowService, replies into the
    // work queue with source GGShadowService.
    let shadows = ShadowService::open(
        &config.write_dir,
        &shadow_things(config, &group),
        queue.clone(),
    );
    hub.set_shadow_sink(shadows.clone());
    let s = shadows.clone();
    status.add_section("shadows", Box::new(move || s.status()));
    if !shadows.synced_things().is_empty() {
        let s = shadows.clone();
        status.add_section("shadow_sync", Box::new(move || s.sync_status()));
    }

    // The cloud link (issue 4): messages routed to `cloud` go to its spool; messages from the
    // cloud enter the work queue with source `cloud` (a QoS 1 one is acknowledged upstream only
    // if the queue took it).
    let cloud = match CloudSettings::from_config(config, &group).map_err(AppError::Startup)? {
        None => {
            log::info!("coreThing.iotHost is empty or \"none\": running without a cloud link");
            status.add_section(
                "cloud",
                Box::new(|| {
                    crate::json::Value::Object(vec![(
                        "state".into(),
                        crate::json::Value::String(
                            "offline (coreThing.iotHost is empty or \"none\")".into(),
                        ),
                    )])
                }),
            );
            None
        }
        Some(mut settings) => {
            // Shadow sync (issue 9): the synced things' shadow responses from the cloud go to
            // the shadow service, not the work queue.
            for thing in shadows.synced_things() {
                for f in ShadowService::cloud_filters(&thing) {
                    if !settings.filters.contains(&f) {
                        settings.filters.push(f);
                    }
                }
            }
            // The link subscribes only when it starts: SyncShadow set later waits for a restart.
            shadows.pin_cloud_things();
            let spool = cloud::open_spool(&config.write_dir, &group.spooler);
            let q = queue.clone();
            let sh = shadows.clone();
            let inbound = move |topic: &str, payload: Bytes| {
                if sh.takes_cloud_topic(topic) {
                    sh.cloud_message(topic, &payload);
                    return true;
                }
                q.push(WorkItem {
                    source: Endpoint::Cloud,
                    topic: topic.to_owned(),
                    payload,
                })
                .is_ok()
            };
            log::info!(
                "cloud link to {}:{} as {}",
                settings.host,
                settings.port,
                settings.client_id(0)
            );
            // Fleet deployments (issue 10): AWS IoT Jobs on the control connection `<thing>`.
            let jobs = crate::deploy::jobs_task::start(ex, config, &settings);
            status.add_section("jobs", Box::new(move || jobs.status()));
            let c = Cloud::start(ex, settings, spool, Box::new(inbound));
            hub.set_cloud_sink(Rc::new(c.clone()));
            if !shadows.synced_things().is_empty() {
                ex.spawn(shadows.clone().run_sync(
                    Rc::new(SyncPort(c.clone())),
                    u64::from(config.shadow_sync_timeout),
                ))
                .detach();
            }
            let (c1, c2) = (c.clone(), c.clone());
            status.add_section("cloud", Box::new(move || c1.status().sections().0));
            status.add_section("spool", Box::new(move || c2.status().sections().1));
            Some(c)
        }
    };

    // Deployments (issue 10): the group is swapped in place when `sprig deploy` installs one.
    // Hooks registered with `applier.on_group_applied` run after each swap (the Lambda
    // runner's `apply` goes there).
    // The applier owns the one typed group from here on (issue 13: the largest is ≈2 MB); the
    // set-up below borrows it one statement at a time (a deployment replaces it).
    let applier = Applier::new(config, group, hub.clone(), reload);
    status.add_section("deployment", {
        let a = applier.clone();
        Box::new(move || a.status())
    });
    let _deployments = ex.spawn(applier.clone().run());
    // The Lambda runner (issue 12): IPC on 127.0.0.1:ggDaemonPort (bound when the group has
    // functions), workers as children.
    let runner = crate::lambda::shell::Runner::new(
        config,
        &applier.group(),
        queue.clone(),
        child_exits.clone(),
    );
    if runner.has_functions() {
        // Not fatal: the broker and the cloud link serve on; the runner retries the port.
        if let Err(e) = runner.listen() {
            log::error!(
                "{e}: functions cannot reach the core until it is free (retried every {} s)",
                limits::IPC_REBIND_SECS
            );
        }
    }
    hub.set_function_sink(Rc::new(runner.clone()));
    // Stream manager (issue 14): on when the group deploys GGStreamManager and the build has
    // the feature. With STREAM_MANAGER_AUTHENTICATE_CLIENT true a client's token must be a
    // running worker's (the runner gives each worker AWS_CONTAINER_AUTHORIZATION_TOKEN and
    // STREAM_MANAGER_SERVER_PORT).
    #[cfg(feature = "stream-manager")]
    let streams = {
        let r = runner.clone();
        start_streams(
            config,
            &applier.group(),
            &status,
            Rc::new(move |t: &str| r.is_live_token(t)),
        )?
    };
    #[cfg(not(feature = "stream-manager"))]
    if applier.group().system_function("GGStreamManager").is_some() {
        log::warn!("the group deploys GGStreamManager but this sprig build lacks the stream-manager feature: no stream manager runs");
    }
    // GGShadowService calls from functions go straight to the shadow service.
    runner.set_shadow(shadows.clone());
    let weak_hub = Rc::downgrade(&hub);
    runner.set_all_or_none(Box::new(move |item| {
        weak_hub
            .upgrade()
            .is_some_and(|h| h.deliver_all_or_none(item))
    }));
    {
        let (r1, r2) = (runner.clone(), runner.clone());
        status.add_section("functions", Box::new(move || r1.status().0));
        status.add_section("ipc", Box::new(move || r2.status().1));
    }
    // A deployment restarts the functions whose configuration or code changed (issue 10 → 12).
    applier.on_group_applied({
        let r = runner.clone();
        Rc::new(move |g| r.apply(g))
    });

    let slot: ServerConfigSlot = Rc::new(RefCell::new(tls));
    // Tasks held here are cancelled when `run` returns (connection tasks end with the executor).
    let _dispatcher = ex.spawn(broker::run_dispatcher(hub.clone()));
    let _status = ex.spawn({
        let status = status.clone();
        async move { status.run().await }
    });
    // Stack pages below the event loop, touched by start-up and TLS handshakes, and once the
    // start-up code's pages go back to the kernel (idle RSS; ARCHITECTURE.md "Idle RSS").
    let _stack_trim = ex.spawn(trim_stack());
    // The local Discovery API (issue 11), on its own port with the broker's certificate.
    let discovery = start_discovery(config, &applier.group(), &identity, &slot, &status)?;
    let discovery_slot = discovery.as_ref().map(|d| d.2.clone());
    // Hot deployments and `sprig reset` reach the shadow service (its thing set, SyncShadow
    // flags, memory re-read from the store) and the discovery directory.
    {
        let (cfg, sh) = (config.clone(), shadows.clone());
        let disc = discovery.as_ref().map(|d| d.0.clone());
        applier.on_group_applied(Rc::new(move |g: &Group| {
            sh.set_things(&shadow_things(&cfg, g));
            if let Some(d) = &disc {
                d.set_group(&cfg, g);
            }
        }));
    }
    let _rotation = ex.spawn(rotate_server_cert(
        config.clone(),
        identity,
        slot.clone(),
        discovery_slot,
    ));
    let discovery_listener = async {
        match discovery {
            Some((d, l, s)) => discovery::server::run(d, ex, l, s).await,
            None => future::pending().await,
        }
    };

    #[cfg(feature = "stream-manager")]
    let streams_run = async {
        match &streams {
            Some(s) => s.run(ex).await,
            None => future::pending().await,
        }
    };
    #[cfg(not(feature = "stream-manager"))]
    let streams_run = future::pending::<()>();
    // Polled only when one of its own wakers fired, not on every wake-up of the event loop
    // (each re-poll retried every listener's accept: src/wake.rs).
    crate::wake::when_woken(future::or(
        future::or(
            broker::run_listener(hub.clone(), ex, listener, slot),
            discovery_listener,
        ),
        future::or(runner.run(ex), future::or(streams_run, shutdown.wait())),
    ))
    .await;
    runner.stop().await;
    if let Some(c) = &cloud {
        c.flush();
    }
    status.remove();
    log::info!("local MQTT broker stopped");
    Ok(())
}

/// Every `STACK_TRIM_INTERVAL_MS`, [`crate::sys::trim_stack`] from the executor's frame (a task
/// is polled from the loop's own depth: everything deeper is dead). On the first round,
/// start-up is over: [`crate::sys::release_text`] unmaps the code, and what runs from then on
/// (device sessions, the idle loop: grouped by the link order) is mapped back on first touch.
/// Runs until dropped, or until madvise(2) fails.
async fn trim_stack() {
    let pause = || Timer::after(Duration::from_millis(limits::STACK_TRIM_INTERVAL_MS));
    pause().await;
    // madvise(2) only fails for a range sprig got wrong: then it stops (pages stay resident).
    let mut given_back = crate::sys::release_text();
    while given_back.is_ok() {
        given_back = crate::sys::trim_stack(limits::STACK_TRIM_KEEP_BYTES);
        pause().await;
    }
}

/// Starts the stream manager when the group deploys `GGStreamManager`, with its status section.
#[cfg(feature = "stream-manager")]
fn start_streams(
    config: &Config,
    group: &Group,
    status: &StatusBoard,
    token_ok: crate::streams::TokenCheck,
) -> Result<Option<crate::streams::StreamManager>, AppError> {
    use crate::streams;
    let settings = streams::Settings::from_group(
        group,
        &config.write_dir,
        config.sprig.stream_store_max_bytes,
    )
    .map_err(|e| AppError::Startup(e.join("; ")))?;
    let Some(settings) = settings else {
        return Ok(None);
    };
    let sm = streams::start(settings, token_ok).map_err(AppError::Startup)?;
    let (s1, s2) = (sm.clone(), sm.clone());
    status.add_section("streams", Box::new(move || s1.status()));
    status.add_section("stream_exports", Box::new(move || s2.export_status()));
    Ok(Some(sm))
}

/// The shadow sync's view of the cloud link.
struct SyncPort(Cloud);

impl crate::shadow::service::CloudPort for SyncPort {
    fn send(&self, topic: &str, payload: Bytes) -> bool {
        self.0.publish(topic, payload).is_ok()
    }
    fn connected(&self) -> bool {
        self.0.connected()
    }
}

/// The things that have shadows: the core (config.json's thing and the group's cores) and every
/// device, with their SyncShadow flag.
fn shadow_things(config: &Config, group: &Group) -> Vec<(String, bool)> {
    let mut things: Vec<(String, bool)> = Vec::new();
    let mut add = |name: &str, sync: bool| {
        if name.is_empty() {
            return;
        }
        match things.iter_mut().find(|(n, _)| n == name) {
            Some(t) => t.1 |= sync,
            None => things.push((name.to_string(), sync)),
        }
    };
    for c in &group.cores {
        if let Some(n) = crate::config::core::thing_name_of(&c.thing_arn) {
            add(n, c.sync_shadow);
        }
    }
    add(&config.core_thing.thing_name, false);
    for d in &group.devices {
        add(&d.thing_name, d.sync_shadow);
    }
    things
}

type DiscoveryParts = (
    Rc<discovery::server::Discovery>,
    async_io::Async<std::net::TcpListener>,
    ServerConfigSlot,
);

/// Binds `sprig.discoveryPort` (None when it is 0) and adds the `discovery` status section.
fn start_discovery(
    config: &Config,
    group: &Group,
    identity: &pki::ServerIdentity,
    broker_tls: &ServerConfigSlot,
    status: &StatusBoard,
) -> Result<Option<DiscoveryParts>, AppError> {
    let port = config.sprig.discovery_port;
    if port == 0 {
        log::info!("discovery API disabled (sprig.discoveryPort is 0)");
        return Ok(None);
    }
    let listener = match broker::bind(port) {
        Ok(l) => l,
        Err(e) if !config.sprig.discovery_port_set => {
            // The default port being taken must not stop the broker: discovery stays off.
            let why = format!(
                "not started: cannot listen on 0.0.0.0:{port} ({e}); set sprig.discoveryPort to a free port, or 0"
            );
            log::warn!("discovery API {why}");
            status.add_section(
                "discovery",
                Box::new(move || {
                    crate::json::Value::Object(vec![(
                        "state".into(),
                        crate::json::Value::String(why.clone()),
                    )])
                }),
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(AppError::Startup(format!(
                "cannot listen on 0.0.0.0:{port} (sprig.discoveryPort; 0 disables discovery): {e}"
            )))
        }
    };
    let d = Rc::new(discovery::server::Discovery::new(config, group, identity));
    log::info!("discovery API on 0.0.0.0:{port}");
    let d2 = d.clone();
    status.add_section("discovery", Box::new(move || d2.status()));
    let tls = Rc::new(RefCell::new(discovery::server::tls_config(
        &broker_tls.borrow(),
    )));
    Ok(Some((d, listener, tls)))
}

fn tls_config(identity: &pki::ServerIdentity) -> Result<Arc<rustls::ServerConfig>, AppError> {
    broker::tls::server_config(identity.cert_chain.clone(), identity.key.clone_key()).map_err(|e| {
        AppError::Startup(format!(
            "{} / {}: {e}",
            identity.cert_path.display(),
            identity.key_path.display()
        ))
    })
}

/// Re-issues the sprig-issued server certificate before it expires or when the interface
/// addresses change; new connections get the new one, open ones keep theirs.
async fn rotate_server_cert(
    config: Config,
    mut identity: pki::ServerIdentity,
    slot: ServerConfigSlot,
    discovery_slot: Option<ServerConfigSlot>,
) {
    loop {
        Timer::after(Duration::from_secs(limits::SERVER_CERT_RECHECK_SECS)).await;
        let now = SystemTime::now();
        let addrs = pki::interface_addrs().unwrap_or_default();
        if !pki::needs_reissue(&identity, now, &addrs) {
            continue;
        }
        match pki::server_identity(&config, now)
            .map_err(|e| e.to_string())
            .and_then(|id| tls_config(&id).map(|c| (id, c)).map_err(|e| e.to_string()))
        {
            Ok((id, c)) => {
                log::info!(
                    "local MQTT server certificate re-issued ({})",
                    id.cert_path.display()
                );
                identity = id;
                if let Some(ds) = &discovery_slot {
                    *ds.borrow_mut() = discovery::server::tls_config(&c);
                }
                *slot.borrow_mut() = c;
            }
            Err(e) => log::warn!("cannot re-issue the local MQTT server certificate: {e}"),
        }
    }
}

/// GGShadowService calls from Lambda functions (issue 12 seam → issue 9 service): the answer's
/// body is the accepted document or AWS's `{code, message}` error document, which the SDK
/// raises as `ShadowError`; a topic that is no shadow request is refused with 400.
impl crate::lambda::shell::ShadowCalls for ShadowService {
    fn call(
        &self,
        _caller_arn: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, crate::lambda::shell::ShadowCallError> {
        let Some((thing, op)) = crate::shadow::parse_request_topic(topic) else {
            return Err(crate::lambda::shell::ShadowCallError {
                code: 400,
                message: format!("{topic:?} is not a shadow request topic ($aws/things/<thing>/shadow/get|update|delete)"),
            });
        };
        let (_suffix, body) = self.request(thing, op, payload);
        Ok(body.to_vec())
    }
}
