//! group.json for sprig with the devices and subscriptions the scenarios use.
//!
//! Roles (the same device numbers are used against mosquitto): dev-0000 is the sink of fan-in,
//! latency and routing; dev-0001..=dev-0008 publish (dev-0001 also for latency, routing and
//! fan-out); dev-0010..=dev-0059 are the fan-out subscribers; dev-0099 is the target of the
//! routing scenario's extra ("noise") subscriptions; dev-0100 and up are idle devices.

use std::fmt::Write as _;
use std::path::Path;

use crate::client::device_name;

pub const SINK: usize = 0;
pub const FIRST_PUBLISHER: usize = 1;
pub const MAX_PUBLISHERS: usize = 8;
pub const FIRST_FANOUT_SUB: usize = 10;
pub const MAX_FANOUT_SUBS: usize = 50;
pub const NOISE_DEV: usize = 99;
pub const FIRST_IDLE: usize = 100;

pub const TOPIC_FANIN: &str = "bench/fanin";
pub const TOPIC_LATENCY: &str = "bench/lat";
pub const TOPIC_ROUTE: &str = "bench/route";
pub const TOPIC_FANOUT: &str = "bench/fanout";

/// The i-th extra subscription's subject in the routing scenario.
pub fn noise_filter(i: usize) -> String {
    format!("bench/noise/{i}/#")
}

const REGION_ACCOUNT: &str = "us-east-1:123456789012";

fn thing_arn(idx: usize) -> String {
    format!("arn:aws:iot:{REGION_ACCOUNT}:thing/{}", device_name(idx))
}

/// AWS IoT certificate id: lowercase hex SHA-256 of the certificate's DER.
fn cert_id(certs: &Path, idx: usize) -> Result<String, String> {
    let path = certs.join(format!("{}.crt", device_name(idx)));
    let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let der = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| format!("{}: no certificate", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Which subscriptions go into the group.
pub struct Plan {
    /// Devices dev-0000 .. dev-(devices-1), all present in `certs`.
    pub devices: usize,
    /// Fan-in, latency and fan-out subscriptions (the throughput scenarios).
    pub scenarios: bool,
    /// The routing scenario's one measured subscription.
    pub route: bool,
    /// Extra subscriptions that never match the measured topic.
    pub noise: usize,
    /// The shadow scenario: each publisher sends shadow updates of its own thing to the local
    /// shadow service and gets `update/accepted` back.
    pub shadow: bool,
}

/// The shadow service as a subscription endpoint.
pub const SHADOW_SERVICE: &str = "GGShadowService";

/// `$aws/things/<dev>/shadow/<suffix>`.
pub fn shadow_topic(idx: usize, suffix: &str) -> String {
    format!("$aws/things/{}/shadow/{suffix}", device_name(idx))
}

/// The group.json text: one Core (the sprig core), the devices, the subscriptions.
pub fn group_json(certs: &Path, plan: &Plan) -> Result<(String, usize), String> {
    let mut subs: Vec<(usize, String, usize)> = Vec::new();
    if plan.scenarios {
        for p in FIRST_PUBLISHER..FIRST_PUBLISHER + MAX_PUBLISHERS {
            subs.push((p, TOPIC_FANIN.into(), SINK));
        }
        subs.push((FIRST_PUBLISHER, TOPIC_LATENCY.into(), SINK));
        for s in FIRST_FANOUT_SUB..FIRST_FANOUT_SUB + MAX_FANOUT_SUBS {
            subs.push((FIRST_PUBLISHER, TOPIC_FANOUT.into(), s));
        }
    }
    if plan.route {
        subs.push((FIRST_PUBLISHER, TOPIC_ROUTE.into(), SINK));
    }
    for i in 0..plan.noise {
        subs.push((FIRST_PUBLISHER, noise_filter(i), NOISE_DEV));
    }

    let mut subs: Vec<(String, String, String)> = subs
        .into_iter()
        .map(|(src, subject, dst)| (thing_arn(src), subject, thing_arn(dst)))
        .collect();
    if plan.shadow {
        for p in FIRST_PUBLISHER..FIRST_PUBLISHER + MAX_PUBLISHERS {
            let svc = SHADOW_SERVICE.to_string();
            subs.push((thing_arn(p), shadow_topic(p, "update"), svc.clone()));
            subs.push((svc, shadow_topic(p, "update/accepted"), thing_arn(p)));
        }
    }
    let mut out = String::with_capacity(200 * plan.devices + 200 * subs.len());
    out.push_str("{\n\"GroupId\":\"bench-group\",\"GroupVersionId\":\"1\",\n");
    out.push_str("\"CoreDefinitionVersion\":{\"Cores\":[{\"Id\":\"core\",\"ThingArn\":\"");
    let _ = write!(
        out,
        "arn:aws:iot:{REGION_ACCOUNT}:thing/bench-core\",\"CertificateArn\":\""
    );
    let _ = write!(
        out,
        "arn:aws:iot:{REGION_ACCOUNT}:cert/{}\",",
        "0".repeat(64)
    );
    out.push_str("\"SyncShadow\":false}]},\n\"DeviceDefinitionVersion\":{\"Devices\":[\n");
    for idx in 0..plan.devices {
        let id = cert_id(certs, idx)?;
        let sep = if idx + 1 < plan.devices { "," } else { "" };
        let _ = writeln!(
            out,
            "{{\"Id\":\"{n}\",\"ThingArn\":\"{t}\",\"CertificateArn\":\"arn:aws:iot:{REGION_ACCOUNT}:cert/{id}\",\"SyncShadow\":false}}{sep}",
            n = device_name(idx),
            t = thing_arn(idx)
        );
    }
    out.push_str("]},\n\"SubscriptionDefinitionVersion\":{\"Subscriptions\":[\n");
    for (i, (src, subject, dst)) in subs.iter().enumerate() {
        let sep = if i + 1 < subs.len() { "," } else { "" };
        let _ = writeln!(
            out,
            "{{\"Id\":\"s{i}\",\"Source\":\"{src}\",\"Subject\":\"{subject}\",\"Target\":\"{dst}\"}}{sep}",
        );
    }
    out.push_str("]}\n}\n");
    Ok((out, subs.len()))
}
