//! TLS for the local broker: the server config (TLS 1.2 and 1.3, ring), the device-certificate
//! verifier, and a small driver that moves a `rustls::ServerConnection` over an
//! `async_io::Async<TcpStream>` (read_tls / process_new_packets / write_tls, nothing else).

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;

use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, ServerConfig, ServerConnection, SignatureScheme,
};

/// Why the TLS server could not be set up.
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

/// Requires a client certificate but, like Greengrass, no CA chain: a device is identified by
/// the SHA-256 of its certificate (checked after the handshake against the group's devices).
/// The handshake signature IS verified, so the client must hold the certificate's private key.
#[derive(Debug)]
struct DeviceCertVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeviceCertVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Identity is the certificate's hash, checked against the group after the handshake;
        // the certificate is parsed (and must be well-formed) by the signature check below.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The broker's TLS server config from a certificate chain (leaf first) and its key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(DeviceCertVerifier {
        algs: provider.signature_verification_algorithms,
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError(format!("TLS setup: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsSetupError(format!(
                "server certificate and key do not fit together: {e}"
            ))
        })?;
    Ok(Arc::new(config))
}

/// What a read from the socket produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Some ciphertext was read and processed (plaintext may be waiting in `reader()`).
    Data,
    /// Nothing to read right now.
    WouldBlock,
    /// The peer closed the connection (TCP EOF or TLS close_notify).
    Closed,
}

/// A server-side TLS connection over a non-blocking socket.
pub struct TlsStream {
    pub sock: Async<TcpStream>,
    pub tls: ServerConnection,
}

impl TlsStream {
    /// Writes buffered TLS records to the socket. `Ok(true)` when everything went out,
    /// `Ok(false)` when the socket is full (wait for `sock.writable()`).
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock.get_ref()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads up to `budget` bytes of ciphertext that are available now and processes them.
    /// A TLS error is returned as `InvalidData` after a best-effort flush of the alert.
    pub fn read_some(&mut self, budget: usize) -> io::Result<ReadOutcome> {
        let mut total = 0;
        let mut outcome = ReadOutcome::WouldBlock;
        while total < budget {
            let n = match self.tls.read_tls(&mut SockReader(self.sock.get_ref())) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            outcome = ReadOutcome::Data;
            match self.tls.process_new_packets() {
                Ok(state) => {
                    if state.peer_has_closed() {
                        return Ok(ReadOutcome::Closed);
                    }
                    // Leave plaintext to the caller before reading more: rustls's plaintext
                    // buffer is bounded and read_tls refuses when it is full.
                    if state.plaintext_bytes_to_read() > 0 {
                        break;
                    }
                }
                Err(e) => {
                    let _ = self.flush();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
        Ok(outcome)
    }

    /// Completes the handshake (the caller bounds it with a timeout).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.tls.is_handshaking() {
            if !self.flush()? {
                self.sock.writable().await?;
                continue;
            }
            if !self.tls.is_handshaking() {
                break;
            }
            match self.read_some(usize::MAX)? {
                ReadOutcome::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    ))
                }
                ReadOutcome::WouldBlock => self.sock.readable().await?,
                ReadOutcome::Data => {}
            }
        }
        // The server's last handshake flight (TLS 1.2 Finished, 1.3 session tickets).
        while !self.flush()? {
            self.sock.writable().await?;
        }
        Ok(())
    }

    /// [`TlsStream::handshake`] bounded by `secs`; the error says why, for a log line.
    pub async fn handshake_within(&mut self, secs: u64) -> Result<(), String> {
        let hs = future::or(async { Some(self.handshake().await) }, async {
            Timer::after(Duration::from_secs(secs)).await;
            None
        })
        .await;
        match hs {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            None => Err(format!("no TLS handshake within {secs} s: closed")),
        }
    }

    /// The certificate id of the client's leaf certificate.
    pub fn peer_certificate_id(&self) -> Option<String> {
        self.tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| crate::pki::certificate_id(c.as_ref()))
    }
}

/// `read_tls` wants `&mut dyn Read`; `&TcpStream` reads without needing `&mut` on the socket.
struct SockReader<'a>(&'a TcpStream);

impl Read for SockReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut &*self.0).read(buf)
    }
}
