//! group.json: the deployed group version with its definitions inline (seed-C §3, §16).

use std::path::Path;

use super::ConfigError;

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
    pub loggers: Vec<Logger>,
    /// Read from the GGCloudSpooler system function's environment.
    pub spooler: Spooler,
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
    pub no_container: bool,
    pub run_as_uid: Option<u32>,
    pub run_as_gid: Option<u32>,
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

impl Group {
    /// Parses group.json bytes; `file` is named in errors.
    /// Returns the group and its warnings, or every validation error found.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
        let _ = bytes;
        Err(vec![ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            message: "group.json parsing is not built yet".into(),
        }])
    }

    /// Reads `WRITE_DIR/ggc/deployment/group/group.json`; a missing file is the empty group.
    pub fn load(write_dir: &Path) -> Result<(Group, Vec<ConfigError>), Vec<ConfigError>> {
        let path = super::group_path(write_dir);
        match std::fs::read(&path) {
            Ok(bytes) => Group::parse(&bytes, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((Group::default(), Vec::new()))
            }
            Err(e) => Err(vec![ConfigError {
                file: path,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }]),
        }
    }

    /// The device with this thing name, if it is in the group.
    pub fn device(&self, thing_name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.thing_name == thing_name)
    }
}
