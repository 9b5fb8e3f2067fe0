//! Certificates: AWS IoT certificate ids, PEM loading, the group CA, the local MQTT server identity.
//!
//! * [`certificate_id`]: how the broker names a device certificate (the id at the end of a
//!   `CertificateArn`).
//! * [`load_cert_chain`], [`load_private_key`]: PEM files into rustls types, errors name the file.
//! * [`GroupCa`]: a local certificate authority that issues device, core and server certificates
//!   (`sprig demo`, and source (b) of the server identity).
//! * [`server_identity`], [`needs_reissue`]: the certificate the broker presents (issue 3 §1).
//!
//! Key choice: every key sprig makes is ECDSA P-256 with SHA-256 signatures. Generating one takes
//! milliseconds even on a Pi Zero (an RSA-2048 key takes seconds there), the certificates are
//! small, and mosquitto, paho and the AWS IoT device SDKs all accept it. The guide says the server
//! certificate Greengrass presents "has an SHA-256 RSA signature, regardless of the key type": that
//! is because the cloud's group CA is RSA. A user who brings an RSA group CA (PKCS#8 key) gets
//! SHA-256 RSA signatures from sprig too; only the server's own key stays ECDSA.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::limits::{MAX_CA_FILE_BYTES, MAX_PEM_FILE_BYTES};

mod ca;
mod netif;
mod server;

pub use self::ca::GroupCa;
pub use self::netif::interface_addrs;
pub use self::server::{
    needs_reissue, server_identity, IdentitySource, ServerCertSettings, ServerIdentity,
};

/// Everything that can go wrong with certificates and keys. Each variant names the file involved
/// and says what to do about it.
#[derive(Debug)]
pub enum PkiError {
    /// A file could not be read (missing, permissions, ...).
    Read { path: PathBuf, error: io::Error },
    /// A file or directory could not be written.
    Write { path: PathBuf, error: io::Error },
    /// A PEM file larger than `max` bytes ([`MAX_PEM_FILE_BYTES`] or [`MAX_CA_FILE_BYTES`]).
    TooLarge { path: PathBuf, max: usize },
    /// A PEM file holds no `CERTIFICATE` block.
    NoCertificate { path: PathBuf },
    /// A PEM file holds no private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    NoPrivateKey { path: PathBuf },
    /// A PEM file that does not parse, or a certificate whose DER does not.
    Malformed { path: PathBuf, detail: String },
    /// A key sprig cannot sign with, or a key that does not belong to its certificate.
    UnusableKey { path: PathBuf, detail: String },
    /// The key is in a hardware module (`pkcs11:` URI), which sprig does not support yet.
    Pkcs11 { uri: String },
    /// rcgen refused to build a certificate.
    Issue { what: &'static str, detail: String },
    /// None of the server identity sources exists (source (c) of issue 3 §1).
    NoServerIdentity { looked_for: Vec<PathBuf> },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::Read { path, error } => write!(f, "{}: cannot read: {error}", path.display()),
            PkiError::Write { path, error } => {
                write!(f, "{}: cannot write: {error}", path.display())
            }
            PkiError::TooLarge { path, max } => write!(
                f,
                "{}: larger than {max} bytes; not a PEM certificate or key",
                path.display()
            ),
            PkiError::NoCertificate { path } => write!(
                f,
                "{}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            PkiError::NoPrivateKey { path } => write!(
                f,
                "{}: no PEM private key found (PKCS#8 PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
                path.display()
            ),
            PkiError::Malformed { path, detail } => write!(f, "{}: {detail}", path.display()),
            PkiError::UnusableKey { path, detail } => write!(f, "{}: {detail}", path.display()),
            PkiError::Pkcs11 { uri } => write!(
                f,
                "{uri}: keys in a PKCS#11 module are not supported yet; use a file:/// key"
            ),
            PkiError::Issue { what, detail } => write!(f, "cannot issue the {what}: {detail}"),
            PkiError::NoServerIdentity { looked_for } => {
                write!(
                    f,
                    "no certificate for the local MQTT server: set crypto.principals.MQTTServerCertificate \
                     (privateKeyPath and certificatePath) in config.json, or provide a group CA; looked for"
                )?;
                for (i, p) in looked_for.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{}", p.display())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PkiError {}

/// The AWS IoT certificate id of a certificate: the lowercase hex SHA-256 of its DER. It is the
/// last segment of a `CertificateArn` (`arn:aws:iot:REGION:ACCOUNT:cert/<id>`).
pub fn certificate_id(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Reads every certificate of a PEM file, leaf first (the order the file has).
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    load_certs(path, MAX_PEM_FILE_BYTES)
}

/// Reads every certificate of a CA file (a bundle may be far bigger than one chain).
pub fn load_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    load_certs(path, MAX_CA_FILE_BYTES)
}

fn load_certs(path: &Path, max: usize) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = read_pem_file(path, max)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Malformed {
            path: path.to_path_buf(),
            detail: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#8, PKCS#1 RSA or SEC1 EC.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    if let Some(uri) = path.to_str().filter(|p| p.starts_with("pkcs11:")) {
        return Err(PkiError::Pkcs11 { uri: uri.into() });
    }
    let pem = read_pem_file(path, MAX_PEM_FILE_BYTES)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(PkiError::NoPrivateKey {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(PkiError::Malformed {
            path: path.to_path_buf(),
            detail: format!("bad PEM: {e}"),
        }),
    }
}

/// Reads a whole PEM file, refusing anything over `max` bytes.
fn read_pem_file(path: &Path, max: usize) -> Result<Vec<u8>, PkiError> {
    let read_err = |error| PkiError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > max {
        return Err(PkiError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// Reads a PEM file as text (rcgen takes `&str`).
fn read_pem_text(path: &Path) -> Result<String, PkiError> {
    String::from_utf8(read_pem_file(path, MAX_PEM_FILE_BYTES)?).map_err(|_| PkiError::Malformed {
        path: path.to_path_buf(),
        detail: "not a PEM text file".into(),
    })
}

/// Who may read a file [`write_file_atomic`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// 0644: certificates.
    Public,
    /// 0600: private keys.
    Secret,
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves half
/// a key behind. Creates the parent directories. Secret files are created 0600, never widened.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: FileMode) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write_err = |error| PkiError::Write {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp); // a leftover from a crash keeps its old mode otherwise
    let bits = match mode {
        FileMode::Public => 0o644,
        FileMode::Secret => 0o600,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(bits)
        .open(&tmp)
        .map_err(write_err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// `SystemTime` to the `time` crate's date, clamped to the Unix epoch.
fn to_offset_date_time(t: SystemTime) -> time::OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A certificate's Unix timestamp to `SystemTime`, clamped to the Unix epoch.
fn from_unix_timestamp(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}
