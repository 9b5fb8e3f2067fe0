//! The group CA: a local certificate authority that signs device, core and server certificates.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;

use super::{read_pem_text, to_offset_date_time, write_file_atomic, FileMode, PkiError};
use crate::limits::{CERT_BACKDATE_SECS, DEMO_CERT_VALIDITY_DAYS};

/// A CA certificate and its key, ready to sign.
pub struct GroupCa {
    /// rcgen signs with an issuer `Certificate`; for a loaded CA this is the CA's parameters
    /// re-signed with its key, which keeps the subject name and key identifier of the original.
    issuer: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as it is on disk (for a loaded CA, the original bytes).
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for GroupCa {
    /// Names the CA by its certificate id; never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = super::certificate_id(&self.cert_der);
        f.debug_struct("GroupCa")
            .field("certificate_id", &id)
            .finish()
    }
}

/// A newly issued certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's DER (its [`super::certificate_id`] names it in a group).
    pub cert_der: CertificateDer<'static>,
}

impl GroupCa {
    /// Makes a new self-signed CA (ECDSA P-256) valid for [`DEMO_CERT_VALIDITY_DAYS`] days.
    pub fn create(common_name: &str) -> Result<GroupCa, PkiError> {
        let key = generate_key("group CA")?;
        let mut params = params_for(common_name, SystemTime::now(), DEMO_CERT_VALIDITY_DAYS);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = params.self_signed(&key).map_err(issue_err("group CA"))?;
        let cert_der = issuer.der().clone();
        let cert_pem = issuer.pem();
        Ok(GroupCa {
            issuer,
            key,
            cert_der,
            cert_pem,
        })
    }

    /// Loads a CA from its PEM certificate and PKCS#8 PEM key, checking they belong together.
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> Result<GroupCa, PkiError> {
        let cert_pem = read_pem_text(cert_pem_path)?;
        let key_pem = read_pem_text(key_pem_path)?;
        let cert_der = super::load_cert_chain(cert_pem_path)?.swap_remove(0);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::UnusableKey {
            path: key_pem_path.to_path_buf(),
            detail: format!(
                "cannot sign with this key ({e}); sprig needs an unencrypted PKCS#8 ECDSA P-256/P-384 \
                 or RSA key (convert with `openssl pkcs8 -topk8 -nocrypt`)"
            ),
        })?;
        let params =
            CertificateParams::from_ca_cert_der(&cert_der).map_err(|e| PkiError::Malformed {
                path: cert_pem_path.to_path_buf(),
                detail: format!("not a usable CA certificate: {e}"),
            })?;
        let spki = spki_of(&cert_der, cert_pem_path)?;
        if spki != key.public_key_der() {
            return Err(PkiError::UnusableKey {
                path: key_pem_path.to_path_buf(),
                detail: format!("is not the key of {}", cert_pem_path.display()),
            });
        }
        let issuer = params.self_signed(&key).map_err(issue_err("group CA"))?;
        Ok(GroupCa {
            issuer,
            key,
            cert_der,
            cert_pem,
        })
    }

    /// Writes the CA certificate (0644) and key (0600).
    pub fn save(&self, cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
        write_file_atomic(
            key_path,
            self.key.serialize_pem().as_bytes(),
            FileMode::Secret,
        )?;
        write_file_atomic(cert_path, self.cert_pem.as_bytes(), FileMode::Public)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a TLS client certificate (a device or the core) with a new ECDSA P-256 key,
    /// valid for [`DEMO_CERT_VALIDITY_DAYS`] days. Returns `(cert_pem, key_pem)`.
    pub fn issue_client_cert(&self, common_name: &str) -> Result<(String, String), PkiError> {
        let issued = self.issue_client(common_name)?;
        Ok((issued.cert_pem, issued.key_pem))
    }

    /// [`GroupCa::issue_client_cert`], also returning the DER.
    pub fn issue_client(&self, common_name: &str) -> Result<Issued, PkiError> {
        let mut params = params_for(common_name, SystemTime::now(), DEMO_CERT_VALIDITY_DAYS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(
            params,
            &generate_key("client certificate")?,
            "client certificate",
        )
    }

    /// Issues the local MQTT server certificate for `key` (a new ECDSA P-256 key when `None`):
    /// SANs `localhost`, `127.0.0.1`, `::1`, `addrs` and the DNS names `dns`, valid from `now`
    /// (backdated a little for clock skew) for `validity_days`.
    pub(crate) fn issue_server(
        &self,
        key: Option<&KeyPair>,
        addrs: &[IpAddr],
        dns: &[String],
        now: SystemTime,
        validity_days: u32,
    ) -> Result<Issued, PkiError> {
        let mut params = params_for("sprig local MQTT server", now, validity_days);
        let localhost = "localhost"
            .to_string()
            .try_into()
            .map_err(issue_err("server certificate"))?;
        params.subject_alt_names = vec![
            SanType::DnsName(localhost),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        ];
        params
            .subject_alt_names
            .extend(addrs.iter().map(|a| SanType::IpAddress(*a)));
        for name in dns {
            let name = name
                .clone()
                .try_into()
                .map_err(issue_err("server certificate"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let what = "server certificate";
        match key {
            Some(key) => self.sign(params, key, what),
            None => self.sign(params, &generate_key(what)?, what),
        }
    }

    /// `true` when `der` is a certificate this CA signed.
    pub fn signed(&self, der: &[u8]) -> bool {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return false;
        };
        cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        key: &KeyPair,
        what: &'static str,
    ) -> Result<Issued, PkiError> {
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key, &self.issuer, &self.key)
            .map_err(issue_err(what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        })
    }
}

/// Parameters with a common name and a validity window starting slightly before `now`.
fn params_for(common_name: &str, now: SystemTime, validity_days: u32) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let start = now
        .checked_sub(Duration::from_secs(CERT_BACKDATE_SECS))
        .unwrap_or(now);
    let end = now + Duration::from_secs(u64::from(validity_days) * 86_400);
    params.not_before = to_offset_date_time(start);
    params.not_after = to_offset_date_time(end);
    params
}

fn generate_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(issue_err(what))
}

fn issue_err(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |e| PkiError::Issue {
        what,
        detail: e.to_string(),
    }
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub(super) fn spki_of(der: &[u8], path: &Path) -> Result<Vec<u8>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Malformed {
        path: path.to_path_buf(),
        detail: format!("not an X.509 certificate: {e}"),
    })?;
    Ok(cert.public_key().raw.to_vec())
}
