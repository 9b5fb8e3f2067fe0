//! The local MQTT server identity: which certificate the broker presents, and when to renew it.
//!
//! Sources, in order (issue 3 §1):
//! (a) config.json `crypto.principals.MQTTServerCertificate` with `privateKeyPath` and
//!     `certificatePath` (the second is sprig's extension): used as given, the user rotates it;
//! (b) else, when `ROOT/certs/group-ca.pem` and `group-ca.key` exist: a certificate sprig issues
//!     from that CA and keeps in `WRITE_DIR/ggc/var/state/server/server.crt` + `server.key`
//!     (0600), reused while it is valid for more than [`SERVER_CERT_RENEW_BEFORE_SECS`] and its
//!     addresses match the host's, re-issued otherwise. When `MQTTServerCertificate` names only
//!     a `privateKeyPath` (Greengrass then has the cloud certify that key), sprig certifies that
//!     key with the group CA instead and leaves the key where it is;
//! (c) else [`PkiError::NoServerIdentity`], naming the files looked for.
//!
//! Rotation without dropping devices: rustls reads a `ServerConfig` only when a handshake starts,
//! and an established session keeps the keys it negotiated. So the broker holds its
//! `Arc<ServerConfig>` in a cell and, every [`SERVER_CERT_RECHECK_SECS`], calls
//! [`interface_addrs`](super::interface_addrs) and [`needs_reissue`]; when that says yes it calls
//! [`server_identity`] again (which issues and stores a fresh certificate), builds a new
//! `ServerConfig` and swaps the `Arc`. New connections get the new certificate; connected devices
//! keep their sessions. Issuing costs one ECDSA key generation and one signature: milliseconds.
//!
//! [`SERVER_CERT_RECHECK_SECS`]: crate::limits::SERVER_CERT_RECHECK_SECS

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ca::spki_of;
use super::netif::normalize;
use super::{
    from_unix_timestamp, load_cert_chain, load_private_key, read_pem_text, write_file_atomic,
    FileMode, GroupCa, PkiError,
};
use crate::config::core::Principal;
use crate::config::Config;
use crate::limits::{
    MAX_SERVER_CERT_VALIDITY_DAYS, MIN_SERVER_CERT_VALIDITY_DAYS, SERVER_CERT_RENEW_BEFORE_SECS,
};

/// Where the server certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// (a) `MQTTServerCertificate` in config.json; never re-issued by sprig.
    Configured,
    /// (b) issued by sprig from the group CA; re-issued by [`needs_reissue`]'s rule.
    GroupCa,
}

/// The certificate and key the broker presents.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// The non-loopback IP addresses among the leaf's SANs, sorted.
    pub addrs: Vec<IpAddr>,
    pub source: IdentitySource,
    /// The DNS names among the leaf's SANs other than `localhost`, sorted.
    pub dns_names: Vec<String>,
    /// `sprig.connectivity` host addresses the certificate must also name (devices check the
    /// name they dialled on port 443 and on old Pythons); part of [`needs_reissue`]'s rule.
    pub extra_hosts: Vec<String>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// `true` when this call issued a new certificate; `false` when it reused or loaded one.
    pub issued: bool,
}

/// What [`server_identity`] needs from config.json, as plain paths (tests build it directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertSettings {
    /// `crypto.principals.MQTTServerCertificate`, when present.
    pub configured: Option<Principal>,
    /// `ROOT/certs/group-ca.pem`.
    pub group_ca_cert: PathBuf,
    /// `ROOT/certs/group-ca.key`.
    pub group_ca_key: PathBuf,
    /// `WRITE_DIR/ggc/var/state/server`.
    pub state_dir: PathBuf,
    /// `sprig.serverCertValidityDays` (clamped to 7–30).
    pub validity_days: u32,
    /// `sprig.connectivity` host addresses (IP or DNS), named as SANs too.
    pub extra_hosts: Vec<String>,
}

/// The server identity for `config` at `now`, with the host's current interface addresses
/// (see the module doc for the three sources and for rotation).
pub fn server_identity(config: &Config, now: SystemTime) -> Result<ServerIdentity, PkiError> {
    let addrs = super::interface_addrs().unwrap_or_else(|e| {
        log::warn!(
            "cannot list interface addresses ({e}); the server certificate names only localhost"
        );
        Vec::new()
    });
    ServerCertSettings::from_config(config).identity(now, &addrs)
}

/// `true` when a sprig-issued certificate should be replaced: it expires within
/// [`SERVER_CERT_RENEW_BEFORE_SECS`] of `now`, or `current_addrs` (the host's non-loopback
/// addresses, as [`interface_addrs`](super::interface_addrs) returns them) plus the configured
/// `identity.extra_hosts` differ from the names it carries. Always `false` for a configured
/// certificate, which its owner rotates.
pub fn needs_reissue(identity: &ServerIdentity, now: SystemTime, current_addrs: &[IpAddr]) -> bool {
    if identity.source == IdentitySource::Configured {
        return false;
    }
    let renew_at = identity
        .not_after
        .checked_sub(Duration::from_secs(SERVER_CERT_RENEW_BEFORE_SECS))
        .unwrap_or(UNIX_EPOCH);
    let (ips, dns) = wanted_sans(current_addrs, &identity.extra_hosts);
    now >= renew_at || identity.addrs != ips || identity.dns_names != dns
}

/// The IP and DNS SANs (besides localhost and loopback) a certificate for a host with
/// `iface` addresses and the configured `extra` host addresses carries: both sorted, deduplicated.
fn wanted_sans(iface: &[IpAddr], extra: &[String]) -> (Vec<IpAddr>, Vec<String>) {
    let mut ips = iface.to_vec();
    let mut dns = Vec::new();
    for h in extra {
        match h.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) if h.eq_ignore_ascii_case("localhost") => {}
            Err(_) => dns.push(h.to_ascii_lowercase()),
        }
    }
    dns.sort_unstable();
    dns.dedup();
    (normalize(ips), dns)
}

impl ServerCertSettings {
    /// The paths and validity `config` names.
    pub fn from_config(config: &Config) -> ServerCertSettings {
        let certs = config.root.join("certs");
        ServerCertSettings {
            configured: config
                .crypto
                .as_ref()
                .and_then(|c| c.mqtt_server_certificate.clone()),
            group_ca_cert: certs.join("group-ca.pem"),
            group_ca_key: certs.join("group-ca.key"),
            state_dir: config
                .write_dir
                .join("ggc")
                .join("var")
                .join("state")
                .join("server"),
            validity_days: config.sprig.server_cert_validity_days,
            extra_hosts: config
                .sprig
                .connectivity
                .iter()
                .map(|c| c.host_address.clone())
                .collect(),
        }
    }

    /// `WRITE_DIR/ggc/var/state/server/server.crt`.
    pub fn stored_cert_path(&self) -> PathBuf {
        self.state_dir.join("server.crt")
    }

    /// The server key: `MQTTServerCertificate.privateKeyPath` when only the key is configured,
    /// else `WRITE_DIR/ggc/var/state/server/server.key` (sprig makes it).
    pub fn stored_key_path(&self) -> PathBuf {
        match self.own_key() {
            Some(key) => key.to_path_buf(),
            None => self.state_dir.join("server.key"),
        }
    }

    /// A configured `privateKeyPath` without `certificatePath`: the user's key, which sprig
    /// certifies with the group CA (where Greengrass would have the cloud sign it).
    fn own_key(&self) -> Option<&Path> {
        match &self.configured {
            Some(p) if p.certificate_path.is_none() => Some(&p.private_key_path),
            _ => None,
        }
    }

    /// Picks the source and returns the identity; `addrs` are the host's interface addresses.
    pub fn identity(&self, now: SystemTime, addrs: &[IpAddr]) -> Result<ServerIdentity, PkiError> {
        if let Some(Principal {
            private_key_path,
            certificate_path: Some(cert_path),
        }) = &self.configured
        {
            return load_pair(cert_path, private_key_path, IdentitySource::Configured);
        }
        if !(self.group_ca_cert.exists() && self.group_ca_key.exists()) {
            if let Some(key) = self.own_key() {
                return Err(PkiError::UnusableKey {
                    path: key.to_path_buf(),
                    detail: format!(
                        "crypto.principals.MQTTServerCertificate has privateKeyPath but no certificatePath, \
                         and there is no group CA ({}, {}) to certify the key; add certificatePath \
                         (a certificate for that key) or the group CA",
                        self.group_ca_cert.display(),
                        self.group_ca_key.display()
                    ),
                });
            }
            return Err(PkiError::NoServerIdentity {
                looked_for: vec![
                    PathBuf::from("config.json crypto.principals.MQTTServerCertificate"),
                    self.group_ca_cert.clone(),
                    self.group_ca_key.clone(),
                ],
            });
        }
        let ca = GroupCa::load(&self.group_ca_cert, &self.group_ca_key)?;
        let addrs = normalize(addrs.to_vec());
        if let Some(mut stored) = self.load_stored(&ca) {
            stored.extra_hosts = self.extra_hosts.clone();
            if !needs_reissue(&stored, now, &addrs) {
                return Ok(stored);
            }
        }
        self.issue(&ca, now, &addrs)
    }

    /// The stored certificate and key when they are readable, belong together and were signed
    /// by `ca`; `None` (issue a new one) otherwise.
    fn load_stored(&self, ca: &GroupCa) -> Option<ServerIdentity> {
        let (cert_path, key_path) = (self.stored_cert_path(), self.stored_key_path());
        if !cert_path.exists() {
            return None;
        }
        let loaded = load_pair(&cert_path, &key_path, IdentitySource::GroupCa);
        match loaded {
            Ok(id) if ca.signed(&id.cert_chain[0]) => Some(id),
            Ok(_) => {
                log::info!(
                    "{}: not signed by the current group CA; issuing a new one",
                    cert_path.display()
                );
                None
            }
            Err(e) => {
                log::warn!("stored server certificate unusable ({e}); issuing a new one");
                None
            }
        }
    }

    fn issue(
        &self,
        ca: &GroupCa,
        now: SystemTime,
        iface: &[IpAddr],
    ) -> Result<ServerIdentity, PkiError> {
        let (addrs, dns) = wanted_sans(iface, &self.extra_hosts);
        let days = self
            .validity_days
            .clamp(MIN_SERVER_CERT_VALIDITY_DAYS, MAX_SERVER_CERT_VALIDITY_DAYS);
        let (cert_path, key_path) = (self.stored_cert_path(), self.stored_key_path());
        let issued = match self.own_key() {
            Some(own) => {
                let pair =
                    KeyPair::from_pem(&read_pem_text(own)?).map_err(|e| PkiError::UnusableKey {
                        path: own.to_path_buf(),
                        detail: format!(
                            "sprig cannot certify this key ({e}); it needs an unencrypted PKCS#8 \
                             ECDSA or RSA key (convert with `openssl pkcs8 -topk8 -nocrypt`)"
                        ),
                    })?;
                ca.issue_server(Some(&pair), &addrs, &dns, now, days)?
            }
            None => {
                let issued = ca.issue_server(None, &addrs, &dns, now, days)?;
                // Key first: a crash between the two renames leaves a pair that does not
                // match, which load_stored notices and replaces.
                write_file_atomic(&key_path, issued.key_pem.as_bytes(), FileMode::Secret)?;
                issued
            }
        };
        write_file_atomic(&cert_path, issued.cert_pem.as_bytes(), FileMode::Public)?;
        let facts = cert_facts(&issued.cert_der, &cert_path)?;
        let key = load_private_key(&key_path)?;
        log::info!(
            "issued the local MQTT server certificate {} (addresses {:?}, names {:?}, valid {days} days)",
            cert_path.display(),
            facts.addrs,
            facts.dns_names
        );
        Ok(ServerIdentity {
            cert_chain: vec![issued.cert_der],
            key,
            not_after: facts.not_after,
            addrs: facts.addrs,
            source: IdentitySource::GroupCa,
            dns_names: facts.dns_names,
            extra_hosts: self.extra_hosts.clone(),
            cert_path,
            key_path,
            issued: true,
        })
    }
}

/// Loads a certificate chain and its key, checking that rustls can sign with the key and that it
/// belongs to the leaf.
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    source: IdentitySource,
) -> Result<ServerIdentity, PkiError> {
    let cert_chain = load_cert_chain(cert_path)?;
    let key = load_private_key(key_path)?;
    let facts = cert_facts(&cert_chain[0], cert_path)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        PkiError::UnusableKey {
            path: key_path.to_path_buf(),
            detail: format!("cannot sign TLS handshakes with this key: {e}"),
        }
    })?;
    // Every ring key type reports its public key; a signer that does not is not compared.
    if let Some(public) = signer.public_key() {
        if public.as_ref() != spki_of(&cert_chain[0], cert_path)?.as_slice() {
            return Err(PkiError::UnusableKey {
                path: key_path.to_path_buf(),
                detail: format!("is not the key of {}", cert_path.display()),
            });
        }
    }
    Ok(ServerIdentity {
        cert_chain,
        key,
        not_after: facts.not_after,
        addrs: facts.addrs,
        source,
        dns_names: facts.dns_names,
        extra_hosts: Vec::new(),
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        issued: false,
    })
}

/// What sprig reads back from a certificate.
struct CertFacts {
    not_after: SystemTime,
    /// Non-loopback IP SANs, normalized.
    addrs: Vec<IpAddr>,
    /// DNS SANs other than localhost, lowercase, sorted.
    dns_names: Vec<String>,
}

fn cert_facts(der: &[u8], path: &Path) -> Result<CertFacts, PkiError> {
    let malformed = |detail: String| PkiError::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| malformed(format!("not an X.509 certificate: {e}")))?;
    let not_after = from_unix_timestamp(cert.validity().not_after.timestamp());
    let mut addrs = Vec::new();
    let mut dns_names = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| malformed(format!("bad subjectAltName: {e}")))?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::IPAddress(bytes) = name {
            match bytes.len() {
                4 => addrs.push(IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                )),
                16 => addrs.push(IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                )),
                _ => {}
            }
        }
        if let x509_parser::extensions::GeneralName::DNSName(name) = name {
            if !name.eq_ignore_ascii_case("localhost") {
                dns_names.push(name.to_ascii_lowercase());
            }
        }
    }
    dns_names.sort_unstable();
    dns_names.dedup();
    Ok(CertFacts {
        not_after,
        addrs: normalize(addrs),
        dns_names,
    })
}
