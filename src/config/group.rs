//! group.json: the deployed group version with its definitions inline (seed-C §3, §16).

use std::path::{Path, PathBuf};

use super::validate::{read_bounded, Obj, Report};
use super::{Config, ConfigError};
use crate::json::{self, Node};
use crate::limits;

/// A deployed group. `{}` is a valid, empty group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub group_id: Option<String>,
    pub group_version_id: Option<String>,
    pub deployment_id: Option<String>,
    pub cores: Vec<Core>,
    pub devices: Vec<Device>,
    pub functions: Vec<Function>,
    pub subscriptions: Vec<Subscription>,
    /// As written; empty means the defaults (see [`Group::effective_loggers`]).
    pub loggers: Vec<Logger>,
    /// Read from the GGCloudSpooler system function's environment.
    pub spooler: Spooler,
    /// `ResourceDefinitionVersion.Resources[]` (parsed and checked; sprig does not mount them).
    pub resources: Vec<Resource>,
    /// `ConnectorDefinitionVersion.Connectors[]` (parsed and checked; sprig does not run them yet).
    pub connectors: Vec<Connector>,
    /// `FunctionDefinitionVersion.DefaultConfig.Execution`: the group's default containerization.
    pub default_no_container: bool,
    /// `DefaultConfig.Execution.RunAs`: the group's default access identity (None = ggc_user/ggc_group).
    pub default_run_as_uid: Option<u32>,
    pub default_run_as_gid: Option<u32>,
}

/// `ResourceDefinitionVersion.Resources[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: String,
    pub name: String,
    /// The guide's type name: `Local.Device`, `Local.Volume`, `ML_Model.SageMaker.Job`,
    /// `ML_Model.S3_Object`, `Secret`.
    pub kind: &'static str,
    /// SourcePath of a local device or volume.
    pub source_path: Option<String>,
}

/// `ConnectorDefinitionVersion.Connectors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub id: String,
    pub arn: String,
    /// Parameter values as strings (numbers and booleans are turned into their JSON text).
    pub parameters: Vec<(String, String)>,
}

/// `CoreDefinitionVersion.Cores[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    pub id: String,
    pub thing_arn: String,
    pub certificate_arn: String,
    pub sync_shadow: bool,
}

/// `DeviceDefinitionVersion.Devices[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub thing_arn: String,
    /// Last segment of `thing_arn`; the device must connect with this MQTT client id.
    pub thing_name: String,
    pub certificate_arn: String,
    /// The certificate id at the end of `certificate_arn`: lowercase hex SHA-256 of the cert DER.
    pub certificate_id: String,
    pub sync_shadow: bool,
}

/// A Source or Target of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `cloud`: AWS IoT Core.
    Cloud,
    /// `GGShadowService`: the local shadow service.
    ShadowService,
    /// A device of the group, by thing name (from its thing ARN).
    Device(String),
    /// A Lambda function, by the ARN written in the subscription.
    Function(String),
    /// A connector, by ARN.
    Connector(String),
}

/// `SubscriptionDefinitionVersion.Subscriptions[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub source: Endpoint,
    /// An MQTT topic filter (`+` and `#` allowed).
    pub subject: String,
    pub target: Endpoint,
}

/// `FunctionDefinitionVersion.Functions[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub id: String,
    pub arn: String,
    /// Recognised Greengrass system function (GGCloudSpooler, GGIPDetector, ...), by ARN.
    pub system: Option<String>,
    pub pinned: bool,
    /// Seconds (default 3).
    pub timeout: u32,
    /// KB, when given.
    pub memory_size: Option<u32>,
    /// `EncodingType` is `binary`.
    pub binary_encoding: bool,
    pub executable: Option<String>,
    pub exec_args: Option<String>,
    /// sprig: `python3.x`, `nodejs12.x`, `executable` (AWS keeps these on the Lambda side).
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub environment: Vec<(String, String)>,
    /// Effective containerization: the function's own, else the group default.
    pub no_container: bool,
    /// Effective RunAs: the function's own, else the group default; None = ggc_user/ggc_group.
    pub run_as_uid: Option<u32>,
    pub run_as_gid: Option<u32>,
    /// `Environment.AccessSysfs`.
    pub access_sysfs: bool,
    /// `Environment.ResourceAccessPolicies[]`: resource id and `true` for "rw".
    pub resource_access: Vec<(String, bool)>,
}

/// Which logs a logger entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggerComponent {
    GreengrassSystem,
    Lambda,
}

/// Where a logger entry sends its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggerType {
    FileSystem,
    AwsCloudWatch,
}

/// `LoggerDefinitionVersion.Loggers[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logger {
    pub component: LoggerComponent,
    pub kind: LoggerType,
    pub level: log::LevelFilter,
    /// KB of disk this component's logs may use.
    pub space_kb: u64,
}

/// `GG_CONFIG_STORAGE_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolStorage {
    #[default]
    Memory,
    FileSystem,
}

/// The cloud spooler's settings, from GGCloudSpooler's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spooler {
    pub storage: SpoolStorage,
    /// `GG_CONFIG_MAX_SIZE_BYTES` (at least 262144).
    pub max_size_bytes: u64,
    /// `GG_CONFIG_SUBSCRIPTION_QUALITY` = `AtLeastOncePersistent`.
    pub persistent_subscriptions: bool,
}

impl Default for Spooler {
    fn default() -> Self {
        Spooler {
            storage: SpoolStorage::Memory,
            max_size_bytes: crate::limits::DEFAULT_SPOOL_MAX_BYTES,
            persistent_subscriptions: false,
        }
    }
}

/// System functions sprig recognises by ARN (`arn:aws:lambda:::function:<name>[:version]`).
pub const SYSTEM_FUNCTIONS: &[&str] = &["GGCloudSpooler", "GGIPDetector", "GGStreamManager"];

const ISOLATION_MODES: &[&str] = &["GreengrassContainer", "NoContainer"];

/// Path of the last group that passed validation, under the write directory.
pub fn last_good_path(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("var")
        .join("state")
        .join("group.last-good.json")
}

impl Group {
    /// Parses group.json bytes; `file` is named in errors.
    /// Returns the group and its warnings, or every validation error found.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
        let mut r = Report::new(file);
        let Some(doc) = r.parse_json(bytes, limits::MAX_GROUP_JSON_BYTES) else {
            return Err(r.errors);
        };
        let group = read_group(&mut r, doc.root());
        match group {
            Some(g) if r.errors.is_empty() => Ok((g, r.warnings)),
            _ => Err(r.errors),
        }
    }

    /// Reads `WRITE_DIR/ggc/deployment/group/group.json`; a missing file is the empty group.
    /// A file over [`limits::MAX_GROUP_JSON_BYTES`] is refused before it is read.
    pub fn load(write_dir: &Path) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
        let path = super::group_path(write_dir);
        match read_bounded(&path, limits::MAX_GROUP_JSON_BYTES) {
            Ok(Some(bytes)) => Group::parse(&bytes, &path),
            Ok(None) => Ok((Group::default(), Vec::new())),
            Err(e) => Err(vec![e]),
        }
    }

    /// Rules that need config.json: RunAs root needs `runtime.allowFunctionsToRunAsRoot`.
    /// Returns the errors (empty when the group fits the config).
    pub fn validate_against(&self, config: &Config) -> Vec<ConfigError> {
        let file = super::group_path(&config.write_dir);
        let mut errors = Vec::new();
        if !config.runtime.allow_functions_to_run_as_root {
            let mut root: Vec<&str> = self
                .functions
                .iter()
                .filter(|f| f.run_as_uid == Some(0) || f.run_as_gid == Some(0))
                .map(|f| f.arn.as_str())
                .collect();
            let default_root =
                self.default_run_as_uid == Some(0) || self.default_run_as_gid == Some(0);
            if default_root && root.is_empty() {
                root.push("FunctionDefinitionVersion.DefaultConfig");
            }
            if !root.is_empty() {
                errors.push(ConfigError {
                    file,
                    key: "FunctionDefinitionVersion".into(),
                    message: format!(
                        "{} are configured to run as root but Greengrass is not configured to run Lambda functions with root permissions.",
                        root.join(", ")
                    ),
                });
            }
        }
        // A deployment for another core is a mistake (a cloud core never receives one).
        if let Some(core) = self.cores.first() {
            let ours = &config.core_thing.thing_arn;
            if config.cloud_enabled() && !ours.is_empty() && core.thing_arn != *ours {
                errors.push(ConfigError {
                    file: super::group_path(&config.write_dir),
                    key: "CoreDefinitionVersion.Cores[0].ThingArn".into(),
                    message: format!(
                        "found \"{}\"; this core is \"{ours}\" (config.json coreThing.thingArn)",
                        core.thing_arn
                    ),
                });
            }
        }
        errors
    }

    /// Loads the deployed group for `write_dir`; see [`Group::load_validated`].
    pub fn load_or_last_good(write_dir: &Path) -> (Group, Vec<ConfigError>) {
        load_checked(write_dir, None)
    }

    /// Loads group.json and checks it against `config` too. A group that passes is saved as
    /// `ggc/var/state/group.last-good.json` and returned with its warnings. One that fails
    /// never replaces a good one: its errors are returned with the last good group (or the
    /// empty group), and the last entry says which group is used instead.
    pub fn load_validated(config: &Config) -> (Group, Vec<ConfigError>) {
        load_checked(&config.write_dir, Some(config))
    }

    /// The device with this thing name, if it is in the group.
    pub fn device(&self, thing_name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.thing_name == thing_name)
    }

    /// The system function with this name (`GGCloudSpooler`, ...), if deployed.
    pub fn system_function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.system.as_deref() == Some(name))
    }

    /// The loggers to apply: as written, or the guide's defaults (FileSystem, INFO, 128 KB for
    /// GreengrassSystem and Lambda) when the group has none.
    pub fn effective_loggers(&self) -> Vec<Logger> {
        if !self.loggers.is_empty() {
            return self.loggers.clone();
        }
        [LoggerComponent::GreengrassSystem, LoggerComponent::Lambda]
            .into_iter()
            .map(|component| Logger {
                component,
                kind: LoggerType::FileSystem,
                level: log::LevelFilter::Info,
                space_kb: limits::DEFAULT_LOG_SPACE_KB,
            })
            .collect()
    }
}

fn parse_checked(
    bytes: &[u8],
    file: &Path,
    config: Option<&Config>,
) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
    let (group, warnings) = Group::parse(bytes, file)?;
    let errors = config
        .map(|c| group.validate_against(c))
        .unwrap_or_default();
    if errors.is_empty() {
        Ok((group, warnings))
    } else {
        Err(errors)
    }
}

fn load_checked(write_dir: &Path, config: Option<&Config>) -> (Group, Vec<ConfigError>) {
    let path = super::group_path(write_dir);
    let last_good = last_good_path(write_dir);
    let mut problems = match read_bounded(&path, limits::MAX_GROUP_JSON_BYTES) {
        Ok(None) => return (Group::default(), Vec::new()),
        Ok(Some(bytes)) => match parse_checked(&bytes, &path, config) {
            Ok((group, mut warnings)) => {
                if let Err(e) = save_atomically(&last_good, &bytes) {
                    warnings.push(ConfigError {
                        file: last_good,
                        key: String::new(),
                        message: format!("cannot save the last good group: {e}"),
                    });
                }
                return (group, warnings);
            }
            Err(errors) => errors,
        },
        Err(e) => vec![e],
    };
    let fallback = match read_bounded(&last_good, limits::MAX_GROUP_JSON_BYTES) {
        Ok(Some(bytes)) => parse_checked(&bytes, &last_good, config)
            .ok()
            .map(|(g, _)| g),
        _ => None,
    };
    let (group, used) = match fallback {
        Some(g) => (
            g,
            format!("using the last good group from {}", last_good.display()),
        ),
        None => (Group::default(), "using the empty group".to_string()),
    };
    problems.push(ConfigError {
        file: path,
        key: String::new(),
        message: format!("group.json failed validation and is not used; {used}"),
    });
    (group, problems)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves
/// half a file.
fn save_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// `{"<list_key>": [...]}` of one definition version: the entries and their key path (an
/// entry's own path is made when it is read, one at a time).
fn entries<'v>(
    r: &mut Report,
    top: &mut Obj<'v>,
    def: &str,
    list_key: &str,
    max: usize,
) -> Option<(String, json::Items<'v>)> {
    let v = top.take(def)?;
    let mut o = Obj::new(r, def, v)?;
    let list = o.take(list_key);
    o.finish(r);
    let list = list?;
    let path = format!("{def}.{list_key}");
    let Some(items) = list.as_array() else {
        r.error(
            &path,
            format!("expected an array, found {}", list.describe()),
        );
        return None;
    };
    if items.len() > max {
        r.error(
            &path,
            format!("found {} entries; allowed at most {max}", items.len()),
        );
        return None;
    }
    Some((path, items))
}

/// Reads every entry of `list` with `read`; the vector is sized once from the entry count.
fn read_entries<'v, T>(
    r: &mut Report,
    list: Option<(String, json::Items<'v>)>,
    mut read: impl FnMut(&mut Report, &str, Node<'v>) -> Option<T>,
) -> Vec<T> {
    let Some((path, items)) = list else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.enumerate() {
        if let Some(x) = read(r, &format!("{path}[{i}]"), v) {
            out.push(x);
        }
    }
    out
}

/// A required non-empty string member.
fn req_string(r: &mut Report, o: &mut Obj, key: &str) -> Option<String> {
    let present = o.take(key).is_some();
    if !present {
        r.error(&o.key(key), "missing; this key is required");
        return None;
    }
    // Take it again through the typed reader for the type check.
    let s = o.string(r, key)?;
    if s.is_empty() {
        r.error(&o.key(key), "found \"\"; allowed a non-empty string");
        return None;
    }
    Some(s)
}

/// Reports duplicate `Id`s within one definition version.
fn unique_ids<'a>(r: &mut Report, path: &str, ids: impl ExactSizeIterator<Item = &'a str>) {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id) {
            r.error(
                path,
                format!("Id \"{id}\" is used twice; Ids must be unique in a definition version"),
            );
        }
    }
}

fn read_group(r: &mut Report, doc: Node) -> Option<Group> {
    let mut top = Obj::new(r, "", doc)?;
    let mut g = Group {
        group_id: top.string(r, "GroupId"),
        group_version_id: top.string(r, "GroupVersionId"),
        deployment_id: top.string(r, "DeploymentId"),
        ..Group::default()
    };
    let cores = entries(r, &mut top, "CoreDefinitionVersion", "Cores", 1_000);
    let found = cores.as_ref().map_or(0, |(_, items)| items.len());
    if top_has(doc, "CoreDefinitionVersion") && found != 1 {
        r.error(
            "CoreDefinitionVersion.Cores",
            format!("found {found} cores; a group has exactly one core"),
        );
    }
    g.cores = read_entries(r, cores, read_core);
    let devices = entries(
        r,
        &mut top,
        "DeviceDefinitionVersion",
        "Devices",
        limits::MAX_GROUP_DEVICES,
    );
    g.devices = read_entries(r, devices, read_device);
    unique_ids(
        r,
        "DeviceDefinitionVersion.Devices",
        g.devices.iter().map(|d| d.id.as_str()),
    );
    let mut names = std::collections::HashSet::new();
    for d in &g.devices {
        if !names.insert(d.thing_name.as_str()) {
            r.error(
                "DeviceDefinitionVersion.Devices",
                format!("thing \"{}\" is listed twice", d.thing_name),
            );
        }
    }
    let resources = entries(
        r,
        &mut top,
        "ResourceDefinitionVersion",
        "Resources",
        limits::MAX_GROUP_RESOURCES,
    );
    g.resources = read_entries(r, resources, read_resource);
    unique_ids(
        r,
        "ResourceDefinitionVersion.Resources",
        g.resources.iter().map(|x| x.id.as_str()),
    );
    read_functions(r, &mut top, &mut g);
    let connectors = entries(
        r,
        &mut top,
        "ConnectorDefinitionVersion",
        "Connectors",
        1_000,
    );
    g.connectors = read_entries(r, connectors, read_connector);
    unique_ids(
        r,
        "ConnectorDefinitionVersion.Connectors",
        g.connectors.iter().map(|c| c.id.as_str()),
    );
    if !g.connectors.is_empty() {
        r.warn(
            "ConnectorDefinitionVersion",
            "connectors are checked but not run by sprig yet",
        );
    }
    let subs = entries(
        r,
        &mut top,
        "SubscriptionDefinitionVersion",
        "Subscriptions",
        limits::MAX_GROUP_SUBSCRIPTIONS,
    );
    g.subscriptions = read_entries(r, subs, |r, p, v| read_subscription(r, p, v, &g));
    unique_ids(
        r,
        "SubscriptionDefinitionVersion.Subscriptions",
        g.subscriptions.iter().map(|s| s.id.as_str()),
    );
    let loggers = entries(r, &mut top, "LoggerDefinitionVersion", "Loggers", 100);
    g.loggers = read_entries(r, loggers, read_logger);
    top.finish(r);
    Some(g)
}

fn top_has(doc: Node, key: &str) -> bool {
    doc.get(key).is_some()
}

fn read_core(r: &mut Report, path: &str, v: Node) -> Option<Core> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let thing_arn = req_string(r, &mut o, "ThingArn");
    if let Some(a) = &thing_arn {
        if super::core::thing_name_of(a).is_none() {
            r.error(
                &o.key("ThingArn"),
                format!("found \"{a}\"; allowed arn:aws:iot:<region>:<account-id>:thing/<name>"),
            );
        }
    }
    let certificate_arn = req_string(r, &mut o, "CertificateArn");
    let sync_shadow = o.bool(r, "SyncShadow", true).unwrap_or(false);
    o.finish(r);
    Some(Core {
        id: id?,
        thing_arn: thing_arn?,
        certificate_arn: certificate_arn?,
        sync_shadow,
    })
}

/// The certificate id at the end of `arn:aws:iot:<region>:<account>:cert/<64 hex>`, lowercased.
pub fn certificate_id_of(arn: &str) -> Option<String> {
    let (_, id) = arn.rsplit_once("cert/")?;
    (arn.starts_with("arn:") && id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id.to_ascii_lowercase())
}

fn read_device(r: &mut Report, path: &str, v: Node) -> Option<Device> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let thing_arn = req_string(r, &mut o, "ThingArn");
    let thing_name = thing_arn.as_deref().and_then(|a| {
        let n = super::core::thing_name_of(a);
        if n.is_none() {
            r.error(
                &o.key("ThingArn"),
                format!("found \"{a}\"; allowed arn:aws:iot:<region>:<account-id>:thing/<name>"),
            );
        }
        n.map(String::from)
    });
    let certificate_arn = req_string(r, &mut o, "CertificateArn");
    let certificate_id = certificate_arn.as_deref().and_then(|a| {
        let id = certificate_id_of(a);
        if id.is_none() {
            r.error(
                &o.key("CertificateArn"),
                format!(
                    "found \"{a}\"; allowed arn:aws:iot:<region>:<account-id>:cert/<64 hex digits>"
                ),
            );
        }
        id
    });
    let sync_shadow = o.bool(r, "SyncShadow", true).unwrap_or(false);
    o.finish(r);
    Some(Device {
        id: id?,
        thing_arn: thing_arn?,
        thing_name: thing_name?,
        certificate_arn: certificate_arn?,
        certificate_id: certificate_id?,
        sync_shadow,
    })
}

fn read_resource(r: &mut Report, path: &str, v: Node) -> Option<Resource> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let name = req_string(r, &mut o, "Name");
    for (key, val) in [("Id", &id), ("Name", &name)] {
        if let Some(s) = val {
            let ok = s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-');
            if !ok {
                r.error(
                    &o.key(key),
                    format!("found \"{s}\"; allowed at most 128 characters of [a-zA-Z0-9:_-]"),
                );
            }
        }
    }
    let container = o.require(r, "ResourceDataContainer");
    o.finish(r);
    let mut c = Obj::new(r, &format!("{path}.ResourceDataContainer"), container?)?;
    const KINDS: &[(&str, &str)] = &[
        ("LocalDeviceResourceData", "Local.Device"),
        ("LocalVolumeResourceData", "Local.Volume"),
        (
            "SageMakerMachineLearningModelResourceData",
            "ML_Model.SageMaker.Job",
        ),
        ("S3MachineLearningModelResourceData", "ML_Model.S3_Object"),
        ("SecretsManagerSecretResourceData", "Secret"),
    ];
    let mut kind = None;
    let mut source_path = None;
    for (key, name) in KINDS {
        if let Some(data) = c.take(key) {
            if kind.is_some() {
                r.error(&c.path, "more than one resource type; allowed exactly one");
            }
            kind = Some(*name);
            source_path = data
                .get("SourcePath")
                .and_then(Node::as_str)
                .map(String::from);
        }
    }
    if kind.is_none() {
        let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        r.error(
            &c.path,
            format!("no resource data; allowed one of {}", names.join(", ")),
        );
    }
    match (kind, source_path.as_deref()) {
        (Some("Local.Device"), Some(p)) if !p.starts_with("/dev/") => r.error(
            &c.path,
            format!("SourcePath \"{p}\": a local device must be under /dev"),
        ),
        (Some("Local.Volume"), Some(p)) if !p.starts_with('/') || p.starts_with("/sys") => r.error(
            &c.path,
            format!("SourcePath \"{p}\": a volume needs an absolute path not under /sys"),
        ),
        (Some("Local.Device" | "Local.Volume"), None) => {
            r.error(&c.path, "SourcePath missing; this key is required")
        }
        _ => {}
    }
    // The data objects themselves are not interpreted further: sprig does not mount resources.
    c.finish(r);
    Some(Resource {
        id: id?,
        name: name?,
        kind: kind?,
        source_path,
    })
}

fn read_connector(r: &mut Report, path: &str, v: Node) -> Option<Connector> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let arn = req_string(r, &mut o, "ConnectorArn");
    if let Some(a) = &arn {
        if !is_connector_arn(a) {
            r.error(&o.key("ConnectorArn"), format!("found \"{a}\"; allowed arn:aws:greengrass:<region>::/connectors/<name>/versions/<n>"));
        }
    }
    let mut parameters = Vec::new();
    if let Some(p) = o.take("Parameters") {
        match p.as_object() {
            Some(members) => {
                parameters.reserve_exact(members.len());
                for (k, v) in members {
                    let text = match v.as_str() {
                        Some(s) => s.to_string(),
                        None => json::to_string(&v.to_value()),
                    };
                    parameters.push((k.to_string(), text));
                }
            }
            None => r.error(
                &o.key("Parameters"),
                format!("expected an object, found {}", p.describe()),
            ),
        }
    }
    o.finish(r);
    Some(Connector {
        id: id?,
        arn: arn?,
        parameters,
    })
}

fn is_connector_arn(a: &str) -> bool {
    a.starts_with("arn:") && a.split(':').nth(2) == Some("greengrass") && a.contains("connectors/")
}

fn is_lambda_arn(a: &str) -> bool {
    let mut p = a.split(':');
    p.next() == Some("arn") && p.nth(1) == Some("lambda") && p.nth(2) == Some("function")
}

/// `GGCloudSpooler` for `arn:aws:lambda:::function:GGCloudSpooler[:1]`.
fn system_name(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:lambda:::function:")?;
    let name = rest.split(':').next()?;
    name.starts_with("GG").then_some(name)
}

struct Execution {
    /// None: not set here (inherit); Some(true) NoContainer.
    no_container: Option<bool>,
    uid: Option<u32>,
    gid: Option<u32>,
    /// The mode was given but invalid.
    invalid_mode: bool,
}

fn read_execution(r: &mut Report, path: &str, v: Node) -> Execution {
    let mut e = Execution {
        no_container: None,
        uid: None,
        gid: None,
        invalid_mode: false,
    };
    let Some(mut o) = Obj::new(r, path, v) else {
        return e;
    };
    if let Some(m) = o.take("IsolationMode") {
        match m.as_str() {
            Some("NoContainer") => e.no_container = Some(true),
            Some("GreengrassContainer") => e.no_container = Some(false),
            _ => e.invalid_mode = true,
        }
    }
    if let Some(ra) = o.take("RunAs") {
        if let Some(mut ro) = Obj::new(r, &format!("{path}.RunAs"), ra) {
            e.uid = ro
                .int(r, "Uid", 0, u32::MAX as i64, "", true)
                .map(|n| n as u32);
            e.gid = ro
                .int(r, "Gid", 0, u32::MAX as i64, "", true)
                .map(|n| n as u32);
            ro.finish(r);
        }
    }
    o.finish(r);
    e
}

fn read_functions(r: &mut Report, top: &mut Obj, g: &mut Group) {
    let def = "FunctionDefinitionVersion";
    if let Some(mut fo) = top.take(def).and_then(|v| Obj::new(r, def, v)) {
        // DefaultConfig first: functions inherit from it.
        if let Some(dc) = fo.take("DefaultConfig") {
            if let Some(mut dco) = Obj::new(r, &format!("{def}.DefaultConfig"), dc) {
                if let Some(ex) = dco.take("Execution") {
                    let e = read_execution(r, &format!("{def}.DefaultConfig.Execution"), ex);
                    if e.invalid_mode {
                        r.error(
                            &format!("{def}.DefaultConfig.Execution.IsolationMode"),
                            format!("Your 'IsolationMode' configuration for the group is invalid. (allowed {})", ISOLATION_MODES.join(", ")),
                        );
                    }
                    g.default_no_container = e.no_container.unwrap_or(false);
                    g.default_run_as_uid = e.uid;
                    g.default_run_as_gid = e.gid;
                }
                dco.finish(r);
            }
        }
        let list = fo.take("Functions");
        fo.finish(r);
        let path = format!("{def}.Functions");
        match list.map(|l| (l, l.as_array())) {
            Some((_, Some(items))) if items.len() > limits::MAX_GROUP_FUNCTIONS => {
                r.error(
                    &path,
                    format!(
                        "found {} entries; allowed at most {}",
                        items.len(),
                        limits::MAX_GROUP_FUNCTIONS
                    ),
                );
            }
            Some((_, Some(items))) => {
                for (i, v) in items.enumerate() {
                    if let Some(f) = read_function(r, &format!("{path}[{i}]"), v, g) {
                        if f.system.as_deref() == Some("GGCloudSpooler") {
                            let vars =
                                format!("{path}[{i}].FunctionConfiguration.Environment.Variables");
                            g.spooler = read_spooler(r, &vars, &f);
                        }
                        g.functions.push(f);
                    }
                }
            }
            Some((l, None)) => r.error(&path, format!("expected an array, found {}", l.describe())),
            None => {}
        }
    }
    unique_ids(
        r,
        "FunctionDefinitionVersion.Functions",
        g.functions.iter().map(|f| f.id.as_str()),
    );
    let mut arns = std::collections::HashSet::new();
    for f in &g.functions {
        if !arns.insert(f.arn.as_str()) {
            r.error(
                "FunctionDefinitionVersion.Functions",
                format!("function {} is listed twice", f.arn),
            );
        }
    }
}

/// Reads the Lambda runtimes sprig can start (a sprig extension; AWS keeps this on the Lambda).
fn valid_runtime(rt: &str) -> bool {
    let py3 = rt
        .strip_prefix("python3.")
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    let node = rt
        .strip_prefix("nodejs")
        .and_then(|v| v.strip_suffix(".x"))
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    py3 || node
        || matches!(
            rt,
            "python2.7" | "nodejs8.10" | "nodejs6.10" | "java8" | "executable"
        )
}

fn read_function(r: &mut Report, path: &str, v: Node, g: &Group) -> Option<Function> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let arn = req_string(r, &mut o, "FunctionArn");
    let arn_shown = arn.clone().unwrap_or_default();
    if let Some(a) = &arn {
        if !is_lambda_arn(a) {
            r.error(&o.key("FunctionArn"), format!("found \"{a}\"; allowed arn:aws:lambda:<region>:<account-id>:function:<name>:<alias or version>"));
        } else if a.ends_with(":$LATEST") {
            r.error(
                &o.key("FunctionArn"),
                format!("found \"{a}\"; $LATEST is not supported, use an alias or a version"),
            );
        }
    }
    let system = arn.as_deref().and_then(system_name).map(String::from);
    if let Some(s) = &system {
        if !SYSTEM_FUNCTIONS.contains(&s.as_str()) {
            r.warn(
                &o.key("FunctionArn"),
                format!(
                    "{s} is not a system function sprig knows ({}); ignored",
                    SYSTEM_FUNCTIONS.join(", ")
                ),
            );
        }
    }
    let mut runtime = o.string(r, "Runtime");
    let mut handler = o.string(r, "Handler");
    let conf_path = o.key("FunctionConfiguration");
    let conf = o.take("FunctionConfiguration");
    o.finish(r);
    let mut f = Function {
        id: id?,
        arn: arn?,
        system,
        pinned: false,
        timeout: limits::DEFAULT_FUNCTION_TIMEOUT_SECS,
        memory_size: None,
        binary_encoding: false,
        executable: None,
        exec_args: None,
        runtime: None,
        handler: None,
        environment: Vec::new(),
        no_container: g.default_no_container,
        run_as_uid: g.default_run_as_uid,
        run_as_gid: g.default_run_as_gid,
        access_sysfs: false,
        resource_access: Vec::new(),
    };
    let mut execution = None;
    let mut execution_path = String::new();
    if let Some(mut c) = conf.and_then(|c| Obj::new(r, &conf_path, c)) {
        f.pinned = c.bool(r, "Pinned", true).unwrap_or(false);
        f.timeout = c
            .int(r, "Timeout", 1, u32::MAX as i64, "seconds", true)
            .map_or(f.timeout, |t| t as u32);
        f.memory_size = c
            .int(r, "MemorySize", 1, u32::MAX as i64, "KB", true)
            .map(|m| m as u32);
        f.binary_encoding = c.one_of(r, "EncodingType", &["json", "binary"]) == Some("binary");
        f.executable = c.string(r, "Executable");
        f.exec_args = c.string(r, "ExecArgs");
        runtime = c.string(r, "Runtime").or(runtime);
        handler = c.string(r, "Handler").or(handler);
        // The CloudFormation shape puts these next to Environment; the API nests them inside.
        let outer = (
            c.take("ResourceAccessPolicies"),
            c.take("AccessSysfs"),
            c.take("Execution"),
        );
        if let Some(env) = c.take("Environment") {
            let env_path = c.key("Environment");
            if let Some(mut e) = Obj::new(r, &env_path, env) {
                if let Some(vars) = e.take("Variables") {
                    match vars.as_object() {
                        Some(members) => {
                            for (k, v) in members {
                                match v.as_str() {
                                    Some(s) => f.environment.push((k.to_string(), s.to_string())),
                                    None => r.error(
                                        &format!("{env_path}.Variables.{k}"),
                                        format!("expected a string, found {}", v.describe()),
                                    ),
                                }
                            }
                        }
                        None => r.error(
                            &format!("{env_path}.Variables"),
                            format!("expected an object, found {}", vars.describe()),
                        ),
                    }
                }
                read_access(r, &mut e, &mut f);
                if let Some(ex) = e.take("Execution") {
                    execution = Some(ex);
                    execution_path = e.key("Execution");
                }
                e.finish(r);
            }
        }
        if let Some(p) = outer.0 {
            read_policies(r, &c.key("ResourceAccessPolicies"), p, &mut f);
        }
        if let Some(a) = outer.1 {
            f.access_sysfs = a.as_bool().unwrap_or(false) || a.as_str() == Some("true");
        }
        if let Some(ex) = outer.2 {
            execution = Some(ex);
            execution_path = c.key("Execution");
        }
        c.finish(r);
    }
    f.runtime = runtime;
    f.handler = handler;
    if let Some(rt) = &f.runtime {
        if !valid_runtime(rt) {
            r.error(&format!("{path}.Runtime"), format!("found \"{rt}\"; allowed python3.x, python2.7, nodejs12.x (nodejsN.x), java8 or executable"));
        }
        if rt == "executable" && !f.binary_encoding {
            r.error(&conf_path, format!("function with arn {arn_shown} is a Lambda executable; its EncodingType must be binary"));
        }
    }
    if let Some(ex) = execution {
        let e = read_execution(r, &execution_path, ex);
        if matches!(f.system.as_deref(), Some("GGCloudSpooler" | "GGIPDetector")) {
            r.error(
                &execution_path,
                format!(
                    "Execution configuration for function with arn {arn_shown} is not allowed."
                ),
            );
        }
        if e.invalid_mode {
            r.error(
                &format!("{execution_path}.IsolationMode"),
                format!("Your 'IsolationMode' configuration for function with arn {arn_shown} is invalid."),
            );
        }
        f.no_container = e.no_container.unwrap_or(f.no_container);
        f.run_as_uid = e.uid.or(f.run_as_uid);
        f.run_as_gid = e.gid.or(f.run_as_gid);
    }
    check_isolation(r, &conf_path, &arn_shown, &f, g);
    Some(f)
}

fn read_access(r: &mut Report, e: &mut Obj, f: &mut Function) {
    if let Some(p) = e.take("ResourceAccessPolicies") {
        read_policies(r, &e.key("ResourceAccessPolicies"), p, f);
    }
    if let Some(a) = e.bool(r, "AccessSysfs", true) {
        f.access_sysfs = a;
    }
}

fn read_policies(r: &mut Report, path: &str, v: Node, f: &mut Function) {
    let Some(items) = v.as_array() else {
        r.error(path, format!("expected an array, found {}", v.describe()));
        return;
    };
    if items.len() > limits::MAX_FUNCTION_RESOURCES {
        r.error(
            path,
            format!(
                "found {} policies; allowed at most {} per function",
                items.len(),
                limits::MAX_FUNCTION_RESOURCES
            ),
        );
    }
    for (i, item) in items.enumerate() {
        let Some(mut o) = Obj::new(r, &format!("{path}[{i}]"), item) else {
            continue;
        };
        let id = req_string(r, &mut o, "ResourceId");
        let rw = o.one_of(r, "Permission", &["ro", "rw"]) == Some("rw");
        o.finish(r);
        if let Some(id) = id {
            f.resource_access.push((id, rw));
        }
    }
}

/// The guide's containerization rules (troubleshooting "create function" errors).
fn check_isolation(r: &mut Report, path: &str, arn: &str, f: &Function, g: &Group) {
    for (id, _) in &f.resource_access {
        if !g.resources.iter().any(|x| &x.id == id) {
            r.error(path, format!("function with arn {arn} refers to resource \"{id}\", which is not in ResourceDefinitionVersion"));
        }
    }
    if f.system.is_some() {
        return; // system functions run in-process in sprig; their MemorySize is informational
    }
    if f.no_container {
        if f.memory_size.is_some() {
            r.error(path, format!("MemorySize configuration for function with arn {arn} is not allowed in IsolationMode=NoContainer."));
        }
        if f.access_sysfs {
            r.error(path, format!("Access Sysfs configuration for function with arn {arn} is not allowed in IsolationMode=NoContainer."));
        }
        for (id, _) in &f.resource_access {
            if let Some(res) = g.resources.iter().find(|x| &x.id == id) {
                if res.kind.starts_with("Local.") {
                    r.error(
                        path,
                        format!("Function {arn} refers to resource of type {} that is not allowed in IsolationMode=NoContainer.", res.kind),
                    );
                }
            }
        }
    } else if f.memory_size.is_none() {
        r.error(path, format!("MemorySize configuration for function with arn {arn} is required in IsolationMode=GreengrassContainer."));
    }
}

fn read_spooler(r: &mut Report, vars: &str, f: &Function) -> Spooler {
    let mut s = Spooler::default();
    let key = |name: &str| format!("{vars}.{name}");
    for (k, v) in &f.environment {
        match k.as_str() {
            "GG_CONFIG_STORAGE_TYPE" => match v.as_str() {
                "Memory" => s.storage = SpoolStorage::Memory,
                "FileSystem" => s.storage = SpoolStorage::FileSystem,
                _ => r.error(
                    &key(k),
                    format!("found \"{v}\"; allowed Memory or FileSystem"),
                ),
            },
            "GG_CONFIG_MAX_SIZE_BYTES" => match v.trim().parse::<u64>() {
                Ok(n) if n >= limits::MIN_SPOOL_MAX_BYTES => s.max_size_bytes = n,
                Ok(_) => r.error(&key(k), "Spool size should be at least 262144 bytes."),
                Err(_) => r.error(
                    &key(k),
                    format!("found \"{v}\"; allowed a whole number of bytes, at least 262144"),
                ),
            },
            "GG_CONFIG_SUBSCRIPTION_QUALITY" => match v.as_str() {
                "AtMostOnce" => s.persistent_subscriptions = false,
                "AtLeastOncePersistent" => s.persistent_subscriptions = true,
                _ => r.error(
                    &key(k),
                    format!("found \"{v}\"; allowed AtMostOnce or AtLeastOncePersistent"),
                ),
            },
            _ => r.warn(&key(k), "not a GGCloudSpooler setting; ignored"),
        }
    }
    s
}

fn read_endpoint(r: &mut Report, path: &str, s: &str, g: &Group) -> Option<Endpoint> {
    if s == "cloud" {
        return Some(Endpoint::Cloud);
    }
    if s == "GGShadowService" {
        return Some(Endpoint::ShadowService);
    }
    if let Some(name) = super::core::thing_name_of(s) {
        if g.device(name).is_none() {
            r.error(
                path,
                format!("thing \"{name}\" is not a device of this group (DeviceDefinitionVersion)"),
            );
            return None;
        }
        return Some(Endpoint::Device(name.to_string()));
    }
    if is_lambda_arn(s) {
        if !g.functions.iter().any(|f| f.arn == s) {
            r.error(
                path,
                format!("function \"{s}\" is not in this group's FunctionDefinitionVersion"),
            );
            return None;
        }
        return Some(Endpoint::Function(s.to_string()));
    }
    if is_connector_arn(s) {
        if !g.connectors.iter().any(|c| c.arn == s) {
            r.error(
                path,
                format!("connector \"{s}\" is not in this group's ConnectorDefinitionVersion"),
            );
            return None;
        }
        return Some(Endpoint::Connector(s.to_string()));
    }
    r.error(path, format!("found \"{s}\"; allowed cloud, GGShadowService, a device thing ARN, a Lambda function ARN or a connector ARN"));
    None
}

fn read_subscription(r: &mut Report, path: &str, v: Node, g: &Group) -> Option<Subscription> {
    let mut o = Obj::new(r, path, v)?;
    let id = req_string(r, &mut o, "Id");
    let source = req_string(r, &mut o, "Source");
    let subject = req_string(r, &mut o, "Subject");
    let target = req_string(r, &mut o, "Target");
    o.finish(r);
    let source = source.and_then(|s| read_endpoint(r, &format!("{path}.Source"), &s, g));
    let target = target.and_then(|t| read_endpoint(r, &format!("{path}.Target"), &t, g));
    if let Some(s) = &subject {
        if let Err(e) = crate::topic::validate_topic_filter(s) {
            r.error(
                &format!("{path}.Subject"),
                format!("found \"{s}\": not a valid MQTT topic filter: {e}"),
            );
            return None;
        }
    }
    Some(Subscription {
        id: id?,
        source: source?,
        subject: subject?,
        target: target?,
    })
}

fn read_logger(r: &mut Report, path: &str, v: Node) -> Option<Logger> {
    let mut o = Obj::new(r, path, v)?;
    let _id = req_string(r, &mut o, "Id");
    let kind = match o.one_of(r, "Type", &["FileSystem", "AWSCloudWatch"]) {
        Some("AWSCloudWatch") => Some(LoggerType::AwsCloudWatch),
        Some(_) => Some(LoggerType::FileSystem),
        None => None,
    };
    let component = match o.one_of(r, "Component", &["GreengrassSystem", "Lambda"]) {
        Some("Lambda") => Some(LoggerComponent::Lambda),
        Some(_) => Some(LoggerComponent::GreengrassSystem),
        None => None,
    };
    let level = match o.one_of(r, "Level", &["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]) {
        Some("DEBUG") => Some(log::LevelFilter::Debug),
        Some("INFO") => Some(log::LevelFilter::Info),
        Some("WARN") => Some(log::LevelFilter::Warn),
        // `log` has no FATAL; ERROR is the closest threshold.
        Some(_) => Some(log::LevelFilter::Error),
        None => None,
    };
    let space_kb = o
        .int(r, "Space", 1, i64::MAX, "KB", true)
        .map_or(limits::DEFAULT_LOG_SPACE_KB, |s| s as u64);
    for key in ["Type", "Component", "Level"] {
        if !top_has(v, key) {
            r.error(&o.key(key), "missing; this key is required");
        }
    }
    o.finish(r);
    Some(Logger {
        component: component?,
        kind: kind?,
        level: level?,
        space_kb,
    })
}

#[cfg(test)]
mod tests {
    use super::super::validate::testing;
    use super::*;

    const FILE: &str = "/w/ggc/deployment/group/group.json";
    const CERT: &str = "arn:aws:iot:us-east-1:123456789012:cert/ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789";
    const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:f:1";
    const SPOOLER: &str = "arn:aws:lambda:::function:GGCloudSpooler:1";

    fn thing(n: &str) -> String {
        format!("arn:aws:iot:us-east-1:123456789012:thing/{n}")
    }

    fn device(n: &str) -> String {
        format!(
            r#"{{"Id":"{n}","ThingArn":"{}","CertificateArn":"{CERT}","SyncShadow":false}}"#,
            thing(n)
        )
    }

    fn parse(s: &str) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
        Group::parse(s.as_bytes(), Path::new(FILE))
    }

    fn ok(s: &str) -> (Group, Vec<ConfigError>) {
        match parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{s} failed: {e:#?}"),
        }
    }

    fn errors(s: &str) -> Vec<(String, String)> {
        testing::errors(s, parse(s))
    }

    fn one_error(s: &str) -> (String, String) {
        let e = errors(s);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap_or_default()
    }

    /// A group with two devices and the given functions / subscriptions JSON arrays.
    fn group(functions: &str, subs: &str) -> String {
        format!(
            r#"{{"GroupId":"g1","GroupVersionId":"v1","DeploymentId":"d1",
            "CoreDefinitionVersion":{{"Cores":[{{"Id":"core","ThingArn":"{}","CertificateArn":"{CERT}","SyncShadow":"true"}}]}},
            "DeviceDefinitionVersion":{{"Devices":[{},{}]}},
            "FunctionDefinitionVersion":{{"DefaultConfig":{{"Execution":{{"IsolationMode":"NoContainer"}}}},"Functions":{functions}}},
            "SubscriptionDefinitionVersion":{{"Subscriptions":{subs}}}}}"#,
            thing("core"),
            device("d1"),
            device("d2")
        )
    }

    fn function(conf: &str) -> String {
        format!(r#"[{{"Id":"f","FunctionArn":"{LAMBDA}","FunctionConfiguration":{conf}}}]"#)
    }

    #[test]
    fn empty_group() {
        let (g, w) = ok("{}");
        assert_eq!(g, Group::default());
        assert!(w.is_empty());
        assert_eq!(g.spooler, Spooler::default());
        assert_eq!(g.spooler.max_size_bytes, 2_621_440);
        assert_eq!(g.spooler.storage, SpoolStorage::Memory);
        let l = g.effective_loggers();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l.kind == LoggerType::FileSystem
            && l.level == log::LevelFilter::Info
            && l.space_kb == 128));
    }

    #[test]
    fn full_group() {
        let subs = format!(
            r#"[{{"Id":"s1","Source":"{}","Subject":"a/+/b","Target":"{}"}},
               {{"Id":"s2","Source":"cloud","Subject":"x/#","Target":"GGShadowService"}},
               {{"Id":"s3","Source":"{LAMBDA}","Subject":"t","Target":"cloud"}}]"#,
            thing("d1"),
            thing("d2")
        );
        let (g, w) = ok(&group(
            &function(r#"{"Pinned":true,"Timeout":30,"Runtime":"python3.7","Handler":"m.h"}"#),
            &subs,
        ));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(g.group_id.as_deref(), Some("g1"));
        assert_eq!(g.group_version_id.as_deref(), Some("v1"));
        assert_eq!(g.deployment_id.as_deref(), Some("d1"));
        assert_eq!(g.cores.len(), 1);
        assert!(
            g.cores[0].sync_shadow,
            "\"true\" as a string, as CloudFormation writes it"
        );
        let d = g.device("d1").unwrap();
        assert_eq!(
            d.certificate_id,
            "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        );
        assert_eq!(d.thing_arn, thing("d1"));
        assert_eq!(g.subscriptions[0].source, Endpoint::Device("d1".into()));
        assert_eq!(g.subscriptions[0].target, Endpoint::Device("d2".into()));
        assert_eq!(g.subscriptions[0].subject, "a/+/b");
        assert_eq!(
            (&g.subscriptions[1].source, &g.subscriptions[1].target),
            (&Endpoint::Cloud, &Endpoint::ShadowService)
        );
        assert_eq!(g.subscriptions[2].source, Endpoint::Function(LAMBDA.into()));
        let f = &g.functions[0];
        assert!(f.pinned && f.no_container);
        assert_eq!(f.timeout, 30);
        assert_eq!(
            (f.runtime.as_deref(), f.handler.as_deref()),
            (Some("python3.7"), Some("m.h"))
        );
        assert_eq!(f.system, None);
    }

    #[test]
    fn function_defaults_and_environment() {
        let conf = r#"{"Environment":{"Variables":{"A":"1","B":"x"}},"EncodingType":"binary","Executable":"run","ExecArgs":"-v"}"#;
        let (g, _) = ok(&group(&function(conf), "[]"));
        let f = &g.functions[0];
        assert_eq!(f.timeout, 3);
        assert!(!f.pinned);
        assert!(f.binary_encoding);
        assert_eq!(
            f.environment,
            [("A".to_string(), "1".to_string()), ("B".into(), "x".into())]
        );
        assert_eq!(
            (f.executable.as_deref(), f.exec_args.as_deref()),
            (Some("run"), Some("-v"))
        );
        assert_eq!((f.run_as_uid, f.run_as_gid), (None, None));
        let (k, m) = one_error(&group(&function(r#"{"EncodingType":"xml"}"#), "[]"));
        assert_eq!(
            k,
            "FunctionDefinitionVersion.Functions[0].FunctionConfiguration.EncodingType"
        );
        assert_eq!(m, "found \"xml\"; allowed json, binary");
        assert!(
            one_error(&group(&function(r#"{"Runtime":"ruby2.7"}"#), "[]"))
                .1
                .contains("allowed python3.x")
        );
        assert!(
            one_error(&group(&function(r#"{"Runtime":"executable"}"#), "[]"))
                .1
                .contains("must be binary")
        );
        ok(&group(
            &function(r#"{"Runtime":"executable","EncodingType":"binary"}"#),
            "[]",
        ));
        ok(&group(&function(r#"{"Runtime":"nodejs12.x"}"#), "[]"));
        assert!(one_error(&group(&function(r#"{"Timeout":0}"#), "[]"))
            .0
            .ends_with("Timeout"));
        let latest = r#"[{"Id":"f","FunctionArn":"arn:aws:lambda:r:1:function:f:$LATEST"}]"#;
        assert!(one_error(&group(latest, "[]"))
            .1
            .contains("$LATEST is not supported"));
        let bad = r#"[{"Id":"f","FunctionArn":"arn:aws:s3:::bucket"}]"#;
        assert!(one_error(&group(bad, "[]"))
            .1
            .contains("allowed arn:aws:lambda"));
    }

    #[test]
    fn isolation_rules() {
        let gc = |conf: &str| {
            function(&format!(
                r#"{{"MemorySize":16384,"Environment":{{"Execution":{{"IsolationMode":"GreengrassContainer"}}{conf}}}}}"#
            ))
        };
        let (g, _) = ok(&group(&gc(""), "[]"));
        assert!(!g.functions[0].no_container);
        assert_eq!(g.functions[0].memory_size, Some(16384));
        assert_eq!(
            one_error(&group(&function(r#"{"MemorySize":16384}"#), "[]")).1,
            format!("MemorySize configuration for function with arn {LAMBDA} is not allowed in IsolationMode=NoContainer.")
        );
        assert_eq!(
            one_error(&group(&function(r#"{"Environment":{"AccessSysfs":true}}"#), "[]")).1,
            format!("Access Sysfs configuration for function with arn {LAMBDA} is not allowed in IsolationMode=NoContainer.")
        );
        let no_mem =
            function(r#"{"Environment":{"Execution":{"IsolationMode":"GreengrassContainer"}}}"#);
        assert_eq!(
            one_error(&group(&no_mem, "[]")).1,
            format!("MemorySize configuration for function with arn {LAMBDA} is required in IsolationMode=GreengrassContainer.")
        );
        let bad = function(r#"{"Environment":{"Execution":{"IsolationMode":"Docker"}}}"#);
        assert_eq!(
            one_error(&group(&bad, "[]")).1,
            format!(
                "Your 'IsolationMode' configuration for function with arn {LAMBDA} is invalid."
            )
        );
        let s = group("[]", "[]").replace("\"NoContainer\"", "\"Docker\"");
        let (k, m) = one_error(&s);
        assert_eq!(
            k,
            "FunctionDefinitionVersion.DefaultConfig.Execution.IsolationMode"
        );
        assert!(
            m.starts_with("Your 'IsolationMode' configuration for the group is invalid."),
            "{m}"
        );
        // CloudFormation puts Execution next to Environment.
        let cfn = function(
            r#"{"MemorySize":"512","Execution":{"IsolationMode":"GreengrassContainer","RunAs":{"Uid":"1","Gid":10}}}"#,
        );
        let (g, _) = ok(&group(&cfn, "[]"));
        let f = &g.functions[0];
        assert_eq!(
            (f.no_container, f.memory_size, f.run_as_uid, f.run_as_gid),
            (false, Some(512), Some(1), Some(10))
        );
    }

    #[test]
    fn resources() {
        let res = r#","ResourceDefinitionVersion":{"Resources":[
            {"Id":"data-volume","Name":"TestDirectory","ResourceDataContainer":{"LocalVolumeResourceData":{"SourcePath":"/src/LRAtest","DestinationPath":"/dest/LRAtest","GroupOwnerSetting":{"AutoAddGroupOwner":true,"GroupOwner":""}}}},
            {"Id":"data-device","Name":"TestCamera","ResourceDataContainer":{"LocalDeviceResourceData":{"SourcePath":"/dev/video0"}}}]}}"#;
        let with = |functions: &str| {
            let g = group(functions, "[]");
            format!("{}{res}", &g[..g.len() - 1])
        };
        let policies = r#"{"Environment":{"ResourceAccessPolicies":[{"ResourceId":"data-volume","Permission":"rw"},{"ResourceId":"data-device","Permission":"ro"}]}}"#;
        let e = errors(&with(&function(policies)));
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].1, format!("Function {LAMBDA} refers to resource of type Local.Volume that is not allowed in IsolationMode=NoContainer."));
        assert!(e[1].1.contains("Local.Device"));
        let gc = r#"{"MemorySize":16384,"Environment":{"Execution":{"IsolationMode":"GreengrassContainer"},"ResourceAccessPolicies":[{"ResourceId":"data-volume","Permission":"rw"}]}}"#;
        let (g, _) = ok(&with(&function(gc)));
        assert_eq!(g.resources.len(), 2);
        assert_eq!(g.resources[0].kind, "Local.Volume");
        assert_eq!(
            g.functions[0].resource_access,
            [("data-volume".to_string(), true)]
        );
        let missing = r#"{"Environment":{"ResourceAccessPolicies":[{"ResourceId":"nope","Permission":"ro"}]}}"#;
        assert!(one_error(&with(&function(missing)))
            .1
            .contains("refers to resource \"nope\""));
        let bad_perm = r#"{"Environment":{"ResourceAccessPolicies":[{"ResourceId":"data-volume","Permission":"x"}]}}"#;
        assert!(errors(&with(&function(bad_perm)))
            .iter()
            .any(|(_, m)| m == "found \"x\"; allowed ro, rw"));
        let eleven: Vec<String> = (0..11)
            .map(|_| r#"{"ResourceId":"data-volume","Permission":"ro"}"#.to_string())
            .collect();
        let many = format!(
            r#"{{"MemorySize":1,"Environment":{{"Execution":{{"IsolationMode":"GreengrassContainer"}},"ResourceAccessPolicies":[{}]}}}}"#,
            eleven.join(",")
        );
        assert!(one_error(&with(&function(&many)))
            .1
            .contains("allowed at most 10 per function"));
        let bad_dev = res.replace("/dev/video0", "/tmp/video0");
        let g = group("[]", "[]");
        assert!(one_error(&format!("{}{bad_dev}", &g[..g.len() - 1]))
            .1
            .contains("must be under /dev"));
    }

    #[test]
    fn system_functions_and_spooler() {
        let sp = |env: &str| {
            format!(
                r#"[{{"FunctionArn":"{SPOOLER}","FunctionConfiguration":{{"Environment":{{"Variables":{{{env}}}}},"Executable":"spooler","MemorySize":32768,"Pinned":true,"Timeout":3}},"Id":"arbitrary-function-id"}}]"#
            )
        };
        let (g, w) = ok(&group(
            &sp(
                r#""GG_CONFIG_MAX_SIZE_BYTES":"262144","GG_CONFIG_STORAGE_TYPE":"FileSystem","GG_CONFIG_SUBSCRIPTION_QUALITY":"AtLeastOncePersistent""#,
            ),
            "[]",
        ));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            g.spooler,
            Spooler {
                storage: SpoolStorage::FileSystem,
                max_size_bytes: 262_144,
                persistent_subscriptions: true
            }
        );
        assert_eq!(
            g.system_function("GGCloudSpooler").map(|f| f.id.as_str()),
            Some("arbitrary-function-id")
        );
        let (k, m) = one_error(&group(&sp(r#""GG_CONFIG_MAX_SIZE_BYTES":"262143""#), "[]"));
        assert_eq!(m, "Spool size should be at least 262144 bytes.");
        assert_eq!(k, "FunctionDefinitionVersion.Functions[0].FunctionConfiguration.Environment.Variables.GG_CONFIG_MAX_SIZE_BYTES");
        assert!(
            one_error(&group(&sp(r#""GG_CONFIG_STORAGE_TYPE":"Disk""#), "[]"))
                .1
                .contains("allowed Memory or FileSystem")
        );
        assert!(
            one_error(&group(&sp(r#""GG_CONFIG_SUBSCRIPTION_QUALITY":"x""#), "[]"))
                .1
                .contains("AtLeastOncePersistent")
        );
        assert!(
            one_error(&group(&sp(r#""GG_CONFIG_MAX_SIZE_BYTES":"lots""#), "[]"))
                .1
                .contains("whole number")
        );
        let exec = r#"[{"Id":"ip","FunctionArn":"arn:aws:lambda:::function:GGIPDetector:1","FunctionConfiguration":{"Pinned":true,"MemorySize":32768,"Timeout":3,"Environment":{"Execution":{"IsolationMode":"NoContainer"}}}}]"#.to_string();
        assert_eq!(
            one_error(&group(&exec, "[]")).1,
            "Execution configuration for function with arn arn:aws:lambda:::function:GGIPDetector:1 is not allowed."
        );
        let sm = r#"[{"Id":"sm","FunctionArn":"arn:aws:lambda:::function:GGStreamManager:1","FunctionConfiguration":{"MemorySize":128000,"Pinned":true}}]"#;
        assert_eq!(
            ok(&group(sm, "[]")).0.functions[0].system.as_deref(),
            Some("GGStreamManager")
        );
        let unknown = r#"[{"Id":"x","FunctionArn":"arn:aws:lambda:::function:GGNewThing:1"}]"#;
        let (_, w) = ok(&group(unknown, "[]"));
        assert!(w[0].message.contains("not a system function sprig knows"));
    }

    #[test]
    fn subscription_rules() {
        let sub = |src: &str, subj: &str, tgt: &str| {
            format!(r#"[{{"Id":"s","Source":"{src}","Subject":"{subj}","Target":"{tgt}"}}]"#)
        };
        let (k, m) = one_error(&group("[]", &sub(&thing("ghost"), "t", "cloud")));
        assert_eq!(k, "SubscriptionDefinitionVersion.Subscriptions[0].Source");
        assert_eq!(
            m,
            "thing \"ghost\" is not a device of this group (DeviceDefinitionVersion)"
        );
        let (k, m) = one_error(&group("[]", &sub("cloud", "a/#/b", "GGShadowService")));
        assert_eq!(k, "SubscriptionDefinitionVersion.Subscriptions[0].Subject");
        assert!(m.contains("not a valid MQTT topic filter"), "{m}");
        assert!(
            one_error(&group("[]", &sub("cloud", "", "GGShadowService")))
                .1
                .contains("non-empty")
        );
        assert!(one_error(&group("[]", &sub("cloud", "t", "IoTCloud")))
            .1
            .contains("allowed cloud, GGShadowService"));
        assert!(one_error(&group("[]", &sub("cloud", "t", LAMBDA)))
            .1
            .contains("not in this group's FunctionDefinitionVersion"));
        let conn = "arn:aws:greengrass:us-west-2::/connectors/TwilioNotifications/versions/3";
        assert!(one_error(&group("[]", &sub(conn, "t", "cloud")))
            .1
            .contains("not in this group's ConnectorDefinitionVersion"));
        let g = group("[]", &sub(conn, "twilio/message/status", "cloud"));
        let with_conn = format!(
            r#"{},"ConnectorDefinitionVersion":{{"Connectors":[{{"Id":"c","ConnectorArn":"{conn}","Parameters":{{"A":"x","N":50}}}}]}}}}"#,
            &g[..g.len() - 1]
        );
        let (g, w) = ok(&with_conn);
        assert_eq!(g.subscriptions[0].source, Endpoint::Connector(conn.into()));
        assert_eq!(
            g.connectors[0].parameters,
            [
                ("A".to_string(), "x".to_string()),
                ("N".into(), "50".into())
            ]
        );
        assert!(w[0].message.contains("not run by sprig yet"));
        let two = r#"[{"Id":"s","Source":"cloud","Subject":"t","Target":"GGShadowService"},{"Id":"s","Source":"cloud","Subject":"u","Target":"GGShadowService"}]"#;
        assert!(one_error(&group("[]", two))
            .1
            .contains("Id \"s\" is used twice"));
        let missing = r#"[{"Id":"s","Source":"cloud","Target":"GGShadowService"}]"#;
        assert_eq!(
            one_error(&group("[]", missing)).0,
            "SubscriptionDefinitionVersion.Subscriptions[0].Subject"
        );
    }

    #[test]
    fn device_rules() {
        let bad_cert = group("[]", "[]").replacen(CERT, "arn:aws:iot:us-east-1:1:cert/abc", 2);
        let e = errors(&bad_cert);
        // The core's CertificateArn is not checked for the id; the device's is.
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "DeviceDefinitionVersion.Devices[0].CertificateArn");
        assert!(e[0].1.contains("cert/<64 hex digits>"));
        let dup = group("[]", "[]").replace(&device("d2"), &device("d1"));
        let e = errors(&dup);
        assert!(
            e.iter().any(|(_, m)| m.contains("used twice"))
                && e.iter().any(|(_, m)| m.contains("listed twice")),
            "{e:?}"
        );
        let bad_thing = group("[]", "[]").replace(&thing("d1"), "arn:aws:iot:r:a:policy/d1");
        assert_eq!(
            one_error(&bad_thing).0,
            "DeviceDefinitionVersion.Devices[0].ThingArn"
        );
        let many: Vec<String> = (0..=limits::MAX_GROUP_DEVICES)
            .map(|i| device(&format!("d{i}")))
            .collect();
        let s = format!(
            r#"{{"DeviceDefinitionVersion":{{"Devices":[{}]}}}}"#,
            many.join(",")
        );
        assert_eq!(one_error(&s).1, "found 201 entries; allowed at most 200");
        assert_eq!(certificate_id_of("arn:aws:iot:r:a:cert/xyz"), None);
    }

    #[test]
    fn core_rules() {
        let none = r#"{"CoreDefinitionVersion":{"Cores":[]}}"#;
        assert_eq!(
            one_error(none).1,
            "found 0 cores; a group has exactly one core"
        );
        let g = group("[]", "[]");
        let two = g.replace(
            r#""Cores":[{"#,
            &format!(
                r#""Cores":[{{"Id":"c2","ThingArn":"{}","CertificateArn":"x"}},{{"#,
                thing("c2")
            ),
        );
        assert_eq!(
            one_error(&two).1,
            "found 2 cores; a group has exactly one core"
        );
    }

    #[test]
    fn loggers() {
        let s = r#"{"LoggerDefinitionVersion":{"Loggers":[
            {"Id":"1","Component":"GreengrassSystem","Level":"ERROR","Space":10240,"Type":"FileSystem"},
            {"Id":"2","Component":"Lambda","Level":"DEBUG","Space":"64","Type":"FileSystem"},
            {"Id":"3","Component":"Lambda","Level":"FATAL","Type":"AWSCloudWatch"},
            {"Id":"4","Component":"Lambda","Level":"WARN","Type":"FileSystem"}]}}"#;
        let (g, _) = ok(s);
        let l = &g.loggers;
        assert_eq!(
            (l[0].component, l[0].level, l[0].space_kb),
            (
                LoggerComponent::GreengrassSystem,
                log::LevelFilter::Error,
                10240
            )
        );
        assert_eq!((l[1].level, l[1].space_kb), (log::LevelFilter::Debug, 64));
        assert_eq!(
            (l[2].kind, l[2].level),
            (LoggerType::AwsCloudWatch, log::LevelFilter::Error)
        );
        assert_eq!(
            (l[3].level, l[3].space_kb),
            (log::LevelFilter::Warn, 128),
            "Space defaults to 128 KB"
        );
        assert_eq!(g.effective_loggers(), g.loggers);
        let bad = r#"{"LoggerDefinitionVersion":{"Loggers":[{"Id":"1","Component":"Kernel","Level":"INFO","Type":"FileSystem"}]}}"#;
        assert_eq!(
            one_error(bad).1,
            "found \"Kernel\"; allowed GreengrassSystem, Lambda"
        );
        let missing = r#"{"LoggerDefinitionVersion":{"Loggers":[{"Id":"1","Component":"Lambda","Type":"FileSystem"}]}}"#;
        assert_eq!(
            one_error(missing).0,
            "LoggerDefinitionVersion.Loggers[0].Level"
        );
        let space = r#"{"LoggerDefinitionVersion":{"Loggers":[{"Id":"1","Component":"Lambda","Level":"INFO","Type":"FileSystem","Space":0}]}}"#;
        assert!(one_error(space).1.starts_with("found 0; allowed 1–"));
    }

    #[test]
    fn unknown_keys_warn_and_json_errors() {
        let (_, w) = ok(r#"{"Extra":1,"DeviceDefinitionVersion":{"Devices":[],"Arn":"x"}}"#);
        let keys: Vec<&str> = w.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["DeviceDefinitionVersion.Arn", "Extra"]);
        let (_, m) = one_error("{\"DeviceDefinitionVersion\": ");
        assert!(
            m.starts_with("Failed to parse /w/ggc/deployment/group/group.json. line 1"),
            "{m}"
        );
        assert_eq!(one_error("[]").1, "expected an object, found an array");
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sprig-group-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("ggc/deployment/group")).unwrap();
        d
    }

    #[test]
    fn last_good_is_kept() {
        let w = tempdir("lastgood");
        // No group.json: the empty group, no errors.
        assert_eq!(Group::load_or_last_good(&w), (Group::default(), vec![]));
        let good = group("[]", "[]");
        std::fs::write(super::super::group_path(&w), &good).unwrap();
        let (g, e) = Group::load_or_last_good(&w);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(g.devices.len(), 2);
        assert_eq!(std::fs::read_to_string(last_good_path(&w)).unwrap(), good);
        // A bad deployment does not replace it.
        std::fs::write(
            super::super::group_path(&w),
            "{\"DeviceDefinitionVersion\":{\"Devices\":[1]}}",
        )
        .unwrap();
        let (g2, e) = Group::load_or_last_good(&w);
        assert_eq!(g2, g);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[1].message.contains("using the last good group"),
            "{}",
            e[1].message
        );
        assert_eq!(std::fs::read_to_string(last_good_path(&w)).unwrap(), good);
        // No last good: the empty group.
        std::fs::remove_file(last_good_path(&w)).unwrap();
        let (g3, e) = Group::load_or_last_good(&w);
        assert_eq!(g3, Group::default());
        assert!(e.last().unwrap().message.ends_with("using the empty group"));
        let _ = std::fs::remove_dir_all(&w);
    }

    #[test]
    fn oversized_file_is_refused_unread() {
        let w = tempdir("big");
        let path = super::super::group_path(&w);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(10 * 1024 * 1024).unwrap(); // sparse: 10 MB of zeros
        let e = Group::load(&w).unwrap_err();
        assert_eq!(
            e[0].message,
            "file is 10485760 bytes; allowed at most 4194304 bytes (refused without parsing)"
        );
        let _ = std::fs::remove_dir_all(&w);
    }

    #[test]
    fn run_as_root_needs_config() {
        let root_fn = function(r#"{"Environment":{"Execution":{"RunAs":{"Uid":0,"Gid":0}}}}"#);
        let (g, _) = ok(&group(&root_fn, "[]"));
        let doc = r#"{"coreThing":{"iotHost":"none"}}"#;
        let (mut config, _) = Config::parse(
            doc.as_bytes(),
            Path::new("/gg"),
            Path::new("/gg/config/config.json"),
        )
        .unwrap();
        let e = g.validate_against(&config);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].message,
            format!("{LAMBDA} are configured to run as root but Greengrass is not configured to run Lambda functions with root permissions.")
        );
        assert_eq!(e[0].file, Path::new("/gg/ggc/deployment/group/group.json"));
        config.runtime.allow_functions_to_run_as_root = true;
        assert!(g.validate_against(&config).is_empty());
        config.runtime.allow_functions_to_run_as_root = false;
        // The group default identity counts too.
        let s = group("[]", "[]").replace(
            r#""IsolationMode":"NoContainer""#,
            r#""IsolationMode":"NoContainer","RunAs":{"Uid":0}"#,
        );
        let (g, _) = ok(&s);
        assert_eq!(g.validate_against(&config).len(), 1);
        assert_eq!(ok(&group("[]", "[]")).0.validate_against(&config), vec![]);
    }

    #[test]
    fn core_must_be_this_core_when_online() {
        let (g, _) = ok(&group("[]", "[]"));
        let cfg = |arn: &str, host: &str| {
            let doc = format!(
                r#"{{"coreThing":{{"iotHost":"{host}","ggHost":"g","thingArn":"{arn}","caPath":"a","certPath":"b","keyPath":"c"}}}}"#
            );
            Config::parse(doc.as_bytes(), Path::new("/gg"), Path::new("/gg/c.json"))
                .unwrap()
                .0
        };
        assert!(g.validate_against(&cfg(&thing("core"), "h.iot")).is_empty());
        let e = g.validate_against(&cfg(&thing("other"), "h.iot"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "CoreDefinitionVersion.Cores[0].ThingArn");
        assert!(e[0].message.contains("this core is"), "{}", e[0].message);
        // Offline (the demo): not checked.
        assert!(g.validate_against(&cfg(&thing("other"), "none")).is_empty());
    }

    #[test]
    fn mutated_documents_never_panic() {
        let doc = group(
            &function(
                r#"{"MemorySize":1,"Environment":{"Execution":{"IsolationMode":"GreengrassContainer","RunAs":{"Uid":1}}}}"#,
            ),
            "[]",
        );
        let doc = doc.as_bytes();
        for i in 0..doc.len() {
            let mut cut = doc.to_vec();
            cut.remove(i);
            let _ = Group::parse(&cut, Path::new(FILE));
            for b in [b'"', b'[', b'1', 0x80] {
                let mut m = doc.to_vec();
                m[i] = b;
                let _ = Group::parse(&m, Path::new(FILE));
            }
        }
    }

    #[test]
    fn largest_group_fits_the_limits() {
        // 200 devices and 10,000 subscriptions with realistic ARNs and topics.
        let devices: Vec<String> = (0..limits::MAX_GROUP_DEVICES)
            .map(|i| device(&format!("device-{i:04}")))
            .collect();
        let subs: Vec<String> = (0..limits::MAX_GROUP_SUBSCRIPTIONS)
            .map(|i| {
                let (a, b) = (i % limits::MAX_GROUP_DEVICES, (i + 1) % limits::MAX_GROUP_DEVICES);
                format!(
                    r#"{{"Id":"subscription-{i:05}","Source":"{}","Subject":"building/floor-{}/sensors/+/temperature","Target":"{}"}}"#,
                    thing(&format!("device-{a:04}")),
                    i % 97,
                    thing(&format!("device-{b:04}"))
                )
            })
            .collect();
        let doc = format!(
            r#"{{"DeviceDefinitionVersion":{{"Devices":[{}]}},"SubscriptionDefinitionVersion":{{"Subscriptions":[{}]}}}}"#,
            devices.join(","),
            subs.join(",")
        );
        assert!(
            doc.len() < limits::MAX_GROUP_JSON_BYTES,
            "{} bytes",
            doc.len()
        );
        let (g, w) = ok(&doc);
        assert!(w.is_empty());
        assert_eq!((g.devices.len(), g.subscriptions.len()), (200, 10_000));
        // One more subscription is refused.
        let more = doc.replacen(r#""Subscriptions":["#, r#""Subscriptions":[{"Id":"x","Source":"cloud","Subject":"t","Target":"GGShadowService"},"#, 1);
        assert_eq!(
            one_error(&more).1,
            "found 10001 entries; allowed at most 10000"
        );
    }
}
