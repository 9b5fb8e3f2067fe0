//! Adopting a root that Greengrass v1 left behind: what sprig will run from its deployed group
//! and what it will not, one line each, for `sprig check`.
//!
//! GGC v1's own on-disk `group.json` shape is not documented in the guide and no authoritative
//! sample was found (seed-C §2.2 names only its path); sprig reads the Definition shape of
//! `aws greengrass get-*-definition-version`. A group.json in another shape fails `sprig check`
//! with the keys it does not know, and can be redeployed with `sprig deploy`.

use std::path::Path;

use super::txn::Layout;
use crate::config::Group;

/// Why user functions do not run in this build, or `None` once the Lambda runner is wired in
/// (issue 10 merge note: the runner's branch sets this to `None`).
pub fn lambda_runner_missing() -> Option<&'static str> {
    Some("the Lambda runner is not built into this sprig")
}

/// `will run: ...` / `will not run: ... (why)` lines for the group's devices, functions,
/// connectors and resources.
pub fn plan_lines(group: &Group, write_dir: &Path) -> Vec<String> {
    let layout = Layout::new(write_dir);
    let mut out = Vec::new();
    for d in &group.devices {
        out.push(format!(
            "will run: device {} (connects to the local MQTT broker with certificate {}...)",
            d.thing_name,
            &d.certificate_id[..d.certificate_id.len().min(12)]
        ));
    }
    for f in &group.functions {
        let line = match f.system.as_deref() {
            Some("GGCloudSpooler") => {
                format!("will run: function {} (GGCloudSpooler: sprig's own cloud spool)", f.id)
            }
            #[cfg(feature = "stream-manager")]
            Some("GGStreamManager") => format!(
                "will run: function {} (GGStreamManager: sprig's own stream manager, 127.0.0.1)",
                f.id
            ),
            #[cfg(not(feature = "stream-manager"))]
            Some("GGStreamManager") => format!(
                "will not run: function {} (GGStreamManager: this sprig build lacks the stream-manager feature)",
                f.id
            ),
            Some(other) => format!(
                "will not run: function {} ({other}: this Greengrass system function is not built into sprig)",
                f.id
            ),
            None => {
                let dir = layout.lambda_dir(&f.id);
                match (dir.is_dir(), lambda_runner_missing()) {
                    (false, _) => format!(
                        "will not run: function {} (no code in {}; deploy it with `sprig deploy GROUP.json --lambda {}=PATH`)",
                        f.id,
                        dir.display(),
                        f.id
                    ),
                    (true, Some(why)) => format!("will not run: function {} ({why})", f.id),
                    (true, None) => format!(
                        "will run: function {} ({}, {}, code in {})",
                        f.id,
                        f.runtime.as_deref().unwrap_or("executable"),
                        if f.pinned { "pinned" } else { "on demand" },
                        dir.display()
                    ),
                }
            }
        };
        out.push(line);
    }
    for c in &group.connectors {
        out.push(format!(
            "will not run: connector {} ({}: connectors are not built into sprig)",
            c.id, c.arn
        ));
    }
    for r in &group.resources {
        out.push(format!(
            "will not run: resource {} ({} {}: local resources are checked but not mounted)",
            r.id, r.kind, r.name
        ));
    }
    out
}
