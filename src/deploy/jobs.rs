//! Fleet deployments over AWS IoT Jobs, sans-IO: MQTT messages and deployment results in,
//! messages to publish and deployments to run out. The shell is [`super::jobs_task`].
//!
//! The documented Jobs MQTT API (AWS IoT developer guide, "Jobs device MQTT API"), on the
//! control connection (client id = the bare thing name):
//!
//! * subscribed: `$aws/things/T/jobs/notify-next`, `.../start-next/accepted|rejected`,
//!   `.../+/update/accepted|rejected` (explicitly: brokers deliver replies only when asked);
//! * `start-next` (`{"clientToken"}`) on every connect and on every notify-next that names a
//!   job; its accepted reply holds `execution` {jobId, jobDocument, status, versionNumber} or
//!   no `execution` when nothing is pending (IN_PROGRESS executions are returned again, which
//!   is how a job the core was running when it died comes back);
//! * `$aws/things/T/jobs/<jobId>/update` with `{"status", "statusDetails"}` (string values):
//!   IN_PROGRESS before any work, then SUCCEEDED, FAILED or REJECTED with a `reason`.
//!
//! One job at a time. The job document (README "Fleet deployments"):
//! `{"operation": "sprig.deploy", "group": {...} | "groupUrl": "https://...", "groupSha256":
//! "<hex>", "lambdas": [{"id", "url", "sha256"}]}`. Any other operation, or a document that
//! does not fit this shape, is REJECTED with the reason.

use crate::json::{self, Value};

/// Largest Jobs message accepted (AWS IoT: a job document is at most 32 KB; the execution
/// around it adds a little). Bigger ones are ignored and logged.
pub const MAX_JOBS_MESSAGE_BYTES: usize = 64 * 1024;

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Publish {
        topic: String,
        payload: String,
    },
    /// Download what `plan` names, then deploy it for this job (`document`: the job
    /// document as JSON text, kept to resume after a restart).
    Deploy {
        job_id: String,
        plan: JobPlan,
        document: String,
    },
    Log(String),
}

/// Where the machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// start-next sent, waiting for its reply.
    Asking,
    /// A deployment runs for this job.
    Working(String),
}

pub struct Jobs {
    thing: String,
    state: State,
    /// A notify-next came while busy: ask again when done.
    ask_again: bool,
}

impl Jobs {
    pub fn new(thing: &str) -> Jobs {
        Jobs {
            thing: thing.to_string(),
            state: State::Idle,
            ask_again: false,
        }
    }

    fn base(&self) -> String {
        format!("$aws/things/{}/jobs", self.thing)
    }

    /// The filters the control connection subscribes to.
    pub fn filters(&self) -> Vec<String> {
        let b = self.base();
        vec![
            format!("{b}/notify-next"),
            format!("{b}/start-next/accepted"),
            format!("{b}/start-next/rejected"),
            format!("{b}/+/update/accepted"),
            format!("{b}/+/update/rejected"),
        ]
    }

    /// The job being worked on, if any.
    pub fn current(&self) -> Option<&str> {
        match &self.state {
            State::Working(j) => Some(j),
            _ => None,
        }
    }

    fn start_next(&mut self) -> Action {
        self.state = State::Asking;
        Action::Publish {
            topic: format!("{}/start-next", self.base()),
            payload: format!("{{\"clientToken\":{}}}", quote(&self.thing)),
        }
    }

    /// The control connection (re)connected.
    pub fn connected(&mut self) -> Vec<Action> {
        match self.state {
            State::Working(_) => Vec::new(),
            _ => vec![self.start_next()],
        }
    }

    /// A job that was running when the core stopped (from the shell's job file): it is
    /// worked on again before anything else.
    pub fn resume(&mut self, job_id: &str) {
        self.state = State::Working(job_id.to_string());
    }

    /// A message on one of [`Jobs::filters`].
    pub fn message(&mut self, topic: &str, payload: &[u8]) -> Vec<Action> {
        let Some(rest) = topic.strip_prefix(&self.base()) else {
            return Vec::new();
        };
        let doc = match json::parse(
            payload,
            MAX_JOBS_MESSAGE_BYTES,
            crate::limits::MAX_JSON_DEPTH,
        ) {
            Ok(v) => v,
            Err(e) => return vec![Action::Log(format!("jobs: {topic}: unreadable ({e})"))],
        };
        match rest {
            "/notify-next" => {
                let named = doc.get("execution").and_then(|e| e.get("jobId")).is_some();
                match (&self.state, named) {
                    (_, false) => Vec::new(),
                    (State::Idle, true) => vec![self.start_next()],
                    (_, true) => {
                        self.ask_again = true;
                        Vec::new()
                    }
                }
            }
            "/start-next/accepted" => self.offered(&doc),
            "/start-next/rejected" => {
                if self.state == State::Asking {
                    self.state = State::Idle;
                }
                vec![Action::Log(format!(
                    "jobs: start-next rejected: {}",
                    json::to_string(&doc)
                ))]
            }
            r if r.ends_with("/update/rejected") => vec![Action::Log(format!(
                "jobs: update{} rejected: {}",
                r.trim_end_matches("/update/rejected"),
                json::to_string(&doc)
            ))],
            _ => Vec::new(),
        }
    }

    /// start-next/accepted: the next job, or none.
    fn offered(&mut self, doc: &Value) -> Vec<Action> {
        let exec = doc.get("execution");
        let job_id = exec.and_then(|e| e.get("jobId")).and_then(Value::as_str);
        let (Some(exec), Some(job_id)) = (exec, job_id) else {
            if self.state == State::Asking {
                self.state = State::Idle;
            }
            return Vec::new();
        };
        match &self.state {
            State::Working(j) if j != job_id => {
                // Busy with another one (resumed after a restart): this one waits.
                self.ask_again = true;
                return Vec::new();
            }
            State::Working(_) => return Vec::new(), // the resumed job itself: already running
            _ => {}
        }
        let job_id = job_id.to_string();
        self.state = State::Working(job_id.clone());
        let mut out = vec![self.update(&job_id, "IN_PROGRESS", &[("step", "validating")])];
        match plan(exec.get("jobDocument")) {
            Ok(plan) => out.push(Action::Deploy {
                job_id,
                plan,
                document: exec
                    .get("jobDocument")
                    .map(json::to_string)
                    .unwrap_or_default(),
            }),
            Err(reason) => {
                out.extend(self.finished(&job_id, "REJECTED", &[("reason", &reason)]));
            }
        }
        out
    }

    /// The deployment for `job_id` ended: `Ok(deployment id)` or `Err(reason)`.
    pub fn deployed(&mut self, job_id: &str, result: Result<String, String>) -> Vec<Action> {
        match result {
            Ok(id) => self.finished(job_id, "SUCCEEDED", &[("deploymentId", &id)]),
            Err(reason) => self.finished(job_id, "FAILED", &[("reason", &reason)]),
        }
    }

    fn finished(&mut self, job_id: &str, status: &str, details: &[(&str, &str)]) -> Vec<Action> {
        let mut out = vec![self.update(job_id, status, details)];
        self.state = State::Idle;
        // The next job, if one is waiting (notify-next also says so).
        self.ask_again = false;
        out.push(self.start_next());
        out
    }

    fn update(&self, job_id: &str, status: &str, details: &[(&str, &str)]) -> Action {
        let d: Vec<String> = details
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
            .collect();
        Action::Publish {
            topic: format!("{}/{job_id}/update", self.base()),
            payload: format!(
                "{{\"status\":{},\"statusDetails\":{{{}}}}}",
                quote(status),
                d.join(",")
            ),
        }
    }
}

fn quote(s: &str) -> String {
    json::to_string(&Value::String(s.to_string()))
}

/// A file to download and its expected SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub url: super::fetch::Url,
    pub sha256: String,
}

/// Where the group comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    Inline(String),
    Download(Fetch),
}

/// What a `sprig.deploy` job deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    pub group: GroupSource,
    /// Function Id and its code zip.
    pub lambdas: Vec<(String, Fetch)>,
}

fn fetch_of(v: &Value, url_key: &str, sha_key: &str, what: &str) -> Result<Fetch, String> {
    let url = v
        .get(url_key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: \"{url_key}\" must be a string"))?;
    let sha = v
        .get(sha_key)
        .and_then(Value::as_str)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("{what}: \"{sha_key}\" must be 64 hex digits (SHA-256)"))?;
    Ok(Fetch {
        url: super::fetch::Url::parse(url).map_err(|e| format!("{what}: {e}"))?,
        sha256: sha.to_ascii_lowercase(),
    })
}

/// What a job document asks for, or why the job is rejected.
pub fn plan(doc: Option<&Value>) -> Result<JobPlan, String> {
    let doc = doc.ok_or("the job has no jobDocument")?;
    match doc.get("operation").and_then(Value::as_str) {
        Some("sprig.deploy") => {}
        Some(other) => {
            return Err(format!(
                "unknown operation {other:?}; this core runs \"sprig.deploy\" jobs only"
            ))
        }
        None => return Err("the job document has no \"operation\"".into()),
    }
    let group = match (doc.get("group"), doc.get("groupUrl")) {
        (Some(_), Some(_)) => return Err("give \"group\" or \"groupUrl\", not both".into()),
        (Some(g @ Value::Object(_)), None) => GroupSource::Inline(json::to_string(g)),
        (Some(other), None) => {
            return Err(format!(
                "\"group\" must be an object, found {}",
                other.describe()
            ))
        }
        (None, Some(_)) => {
            GroupSource::Download(fetch_of(doc, "groupUrl", "groupSha256", "groupUrl")?)
        }
        (None, None) => {
            return Err("the job document has neither \"group\" nor \"groupUrl\"".into())
        }
    };
    let mut lambdas: Vec<(String, Fetch)> = Vec::new();
    if let Some(list) = doc.get("lambdas") {
        let items = list.as_array().ok_or("\"lambdas\" must be an array")?;
        if items.len() > crate::limits::DEPLOY_MAX_LAMBDA_ARGS {
            return Err(format!(
                "{} lambdas; at most {}",
                items.len(),
                crate::limits::DEPLOY_MAX_LAMBDA_ARGS
            ));
        }
        for (i, item) in items.iter().enumerate() {
            let what = format!("lambdas[{i}]");
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{what}: \"id\" must be a string"))?;
            super::safe_id(id).map_err(|e| format!("{what}: {e}"))?;
            if lambdas.iter().any(|(x, _)| x == id) {
                return Err(format!("{what}: function {id} is listed twice"));
            }
            lambdas.push((id.to_string(), fetch_of(item, "url", "sha256", &what)?));
        }
    }
    Ok(JobPlan { group, lambdas })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publishes(a: &[Action]) -> Vec<(String, String)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Publish { topic, payload } => Some((topic.clone(), payload.clone())),
                _ => None,
            })
            .collect()
    }

    const B: &str = "$aws/things/core/jobs";

    #[test]
    fn a_job_runs_from_start_next_to_succeeded_then_asks_again() {
        let mut j = Jobs::new("core");
        let a = j.connected();
        assert_eq!(publishes(&a)[0].0, format!("{B}/start-next"));
        let offer = br#"{"execution":{"jobId":"j1","status":"IN_PROGRESS","versionNumber":2,
            "jobDocument":{"operation":"sprig.deploy","group":{"DeviceDefinitionVersion":{"Devices":[]}}}}}"#;
        let a = j.message(&format!("{B}/start-next/accepted"), offer);
        let p = publishes(&a);
        assert_eq!(p[0].0, format!("{B}/j1/update"));
        assert!(p[0].1.contains("\"IN_PROGRESS\""));
        assert!(matches!(&a[1], Action::Deploy { job_id, plan, .. }
            if job_id == "j1" && plan.group == GroupSource::Inline(r#"{"DeviceDefinitionVersion":{"Devices":[]}}"#.into())));
        assert_eq!(j.current(), Some("j1"));
        // A notify-next while busy does not start a second job.
        let n = j.message(
            &format!("{B}/notify-next"),
            br#"{"execution":{"jobId":"j2"}}"#,
        );
        assert!(n.is_empty());
        let a = j.deployed("j1", Ok("dep-1".into()));
        let p = publishes(&a);
        assert_eq!(
            p[0].1,
            r#"{"status":"SUCCEEDED","statusDetails":{"deploymentId":"dep-1"}}"#
        );
        assert_eq!(p[1].0, format!("{B}/start-next"));
        // Nothing pending.
        assert!(j
            .message(&format!("{B}/start-next/accepted"), b"{}")
            .is_empty());
        assert_eq!(j.current(), None);
    }

    #[test]
    fn unknown_operations_and_downloads_are_rejected_with_a_reason() {
        for (doc, why) in [
            (
                r#"{"operation":"reboot"}"#,
                "unknown operation \\\"reboot\\\"",
            ),
            (
                r#"{"operation":"sprig.deploy","groupUrl":"https://x"}"#,
                "groupSha256",
            ),
            (
                r#"{"operation":"sprig.deploy","group":{},"lambdas":[{"id":"../x","url":"https://h/","sha256":"00"}]}"#,
                "lambdas[0]: function Id",
            ),
            (r#"{"operation":"sprig.deploy"}"#, "neither"),
        ] {
            let mut j = Jobs::new("core");
            j.connected();
            let offer = format!(r#"{{"execution":{{"jobId":"j","jobDocument":{doc}}}}}"#);
            let a = j.message(&format!("{B}/start-next/accepted"), offer.as_bytes());
            let p = publishes(&a);
            assert!(p[0].1.contains("IN_PROGRESS"), "{p:?}");
            assert!(p[1]
                .1
                .starts_with(r#"{"status":"REJECTED","statusDetails":{"reason":"#));
            assert!(p[1].1.contains(why), "{}", p[1].1);
            assert_eq!(p[2].0, format!("{B}/start-next"));
        }
    }

    #[test]
    fn a_resumed_job_is_not_started_twice() {
        let mut j = Jobs::new("core");
        j.resume("j1");
        assert!(j.connected().is_empty());
        let offer = br#"{"execution":{"jobId":"j1","jobDocument":{"operation":"sprig.deploy","group":{}}}}"#;
        assert!(j
            .message(&format!("{B}/start-next/accepted"), offer)
            .is_empty());
        let a = j.deployed("j1", Err("bad".into()));
        assert!(publishes(&a)[0]
            .1
            .contains(r#""FAILED","statusDetails":{"reason":"bad"}"#));
    }
}
