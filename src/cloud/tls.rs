//! TLS for the cloud link: the rustls client configuration (client certificate, server verified
//! against caPath, ALPN on 443) and a byte stream over any inner stream, so TLS can run over TCP
//! or inside an HTTPS proxy's TLS.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::pki;

/// ALPN protocol AWS IoT Core expects for MQTT on port 443 (seed-A §4.3, [EXT]).
pub const ALPN_MQTT_443: &[u8] = b"x-amzn-mqtt-ca";

/// A byte stream the link can read from and write to; cancel-safe `read`.
pub(crate) trait Wire {
    /// Reads some bytes; 0 means the peer closed. Dropping the future loses no data.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
}

impl Wire for Async<std::net::TcpStream> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        AsyncReadExt::read(self, buf).await
    }
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, buf).await
    }
}

fn roots(ca_files: &[&Path]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for path in ca_files {
        for cert in pki::load_ca_certs(path).map_err(|e| e.to_string())? {
            roots.add(cert).map_err(|e| {
                format!(
                    "the CA file {} holds an unusable certificate: {e}",
                    path.display()
                )
            })?;
        }
    }
    Ok(roots)
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    // Protocol versions come from the ring provider's defaults (TLS 1.2 and 1.3).
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS))
}

/// The client configuration for the MQTT connection: our certificate and key, the server
/// verified against `ca` (webpki), ALPN `x-amzn-mqtt-ca` when `alpn` (port 443).
pub fn mqtt_client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    alpn: bool,
) -> Result<Arc<ClientConfig>, String> {
    let roots = roots(&[ca])?;
    let certs = pki::load_cert_chain(cert).map_err(|e| e.to_string())?;
    let key = pki::load_private_key(key).map_err(|e| e.to_string())?;
    let mut cfg = builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("the certificate and private key do not form a usable pair: {e}"))?;
    if alpn {
        cfg.alpn_protocols = vec![ALPN_MQTT_443.to_vec()];
    }
    Ok(Arc::new(cfg))
}

/// The client configuration for an `https://` proxy: the server verified against `ca_files`
/// (caPath, plus the system bundle when present), no client certificate.
pub fn proxy_client_config(ca_files: &[&Path]) -> Result<Arc<ClientConfig>, String> {
    Ok(Arc::new(
        builder()
            .with_root_certificates(roots(ca_files)?)
            .with_no_client_auth(),
    ))
}

/// `ca` and, when present, the system bundle (`/etc/ssl/certs/ca-certificates.crt`).
pub fn with_system_bundle(ca: &Path) -> Vec<&Path> {
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let mut cas = vec![ca];
    if bundle.exists() {
        cas.push(bundle);
    }
    cas
}

/// TLS over an inner [`Wire`].
pub(crate) struct TlsWire<W> {
    inner: W,
    conn: ClientConnection,
    /// Ciphertext read from `inner` goes straight into rustls, so a cancelled read loses nothing.
    rx: Box<[u8]>,
    tx: Vec<u8>,
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<W: Wire> TlsWire<W> {
    /// Runs the handshake with `host` (SNI and the name verified) over `inner`.
    pub async fn connect(inner: W, cfg: Arc<ClientConfig>, host: &str) -> io::Result<TlsWire<W>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid server name"),
            )
        })?;
        let conn = ClientConnection::new(cfg, name).map_err(tls_err)?;
        let mut w = TlsWire {
            inner,
            conn,
            rx: vec![0u8; 4096].into_boxed_slice(),
            tx: Vec::new(),
        };
        while w.conn.is_handshaking() {
            w.flush().await?;
            if w.conn.is_handshaking() && w.conn.wants_read() && w.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                ));
            }
        }
        w.flush().await?;
        Ok(w)
    }

    /// The ALPN protocol the server picked.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.tx.clear();
            self.conn.write_tls(&mut self.tx)?;
            self.inner.write_all(&self.tx).await?;
        }
        Ok(())
    }

    /// Reads ciphertext once and feeds it to rustls; returns the bytes read (0 = EOF).
    async fn fill(&mut self) -> io::Result<usize> {
        let n = self.inner.read(&mut self.rx).await?;
        let mut rd = &self.rx[..n];
        while !rd.is_empty() {
            self.conn.read_tls(&mut rd)?;
            self.conn.process_new_packets().map_err(tls_err)?;
        }
        Ok(n)
    }
}

impl<W: Wire> Wire for TlsWire<W> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.fill().await? == 0 {
                return Ok(0);
            }
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(buf)?;
        self.flush().await
    }
}
