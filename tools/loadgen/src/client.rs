//! One MQTT 3.1.1 device over TLS with a client certificate: blocking socket, one thread each.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Largest packet the load generator accepts from a broker (the AWS IoT payload limit plus headers).
const MAX_PACKET: usize = 128 * 1024 + 1024;

/// Where devices connect and where their certificates are.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Holds `ca.crt` (verifies the broker, server name `localhost`) and `dev-NNNN.crt/.key`.
    pub certs: PathBuf,
    /// MQTT keep-alive sent in CONNECT, seconds.
    pub keep_alive: u16,
}

/// The thing name / MQTT client id of device `idx`; its files are `<name>.crt` and `<name>.key`.
pub fn device_name(idx: usize) -> String {
    format!("dev-{idx:04}")
}

fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

fn load_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| io_err(format!("{}: {e}", path.display())))?;
    rustls_pemfile::certs(&mut &pem[..]).collect()
}

fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).map_err(|e| io_err(format!("{}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut &pem[..])?
        .ok_or_else(|| io_err(format!("{}: no private key", path.display())))
}

/// TLS client configuration of device `idx`: trusts `ca.crt`, presents the device's certificate.
pub fn tls_config(certs: &Path, idx: usize) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&certs.join("ca.crt"))? {
        roots.add(c).map_err(|e| io_err(format!("ca.crt: {e}")))?;
    }
    let name = device_name(idx);
    let chain = load_certs(&certs.join(format!("{name}.crt")))?;
    let key = load_key(&certs.join(format!("{name}.key")))?;
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| io_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| io_err(format!("{name}: {e}")))?;
    Ok(Arc::new(cfg))
}

pub struct Client {
    tls: StreamOwned<ClientConnection, TcpStream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    pub name: String,
}

impl Client {
    /// TCP connect, TLS handshake, CONNECT (clean session) and a successful CONNACK.
    pub fn connect(t: &Target, idx: usize, timeout: Duration) -> io::Result<Client> {
        let cfg = tls_config(&t.certs, idx)?;
        Client::connect_with(t, idx, cfg, timeout)
    }

    pub fn connect_with(
        t: &Target,
        idx: usize,
        cfg: Arc<ClientConfig>,
        timeout: Duration,
    ) -> io::Result<Client> {
        let name = device_name(idx);
        let sock = TcpStream::connect_timeout(&t.addr, timeout)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let server = ServerName::try_from("localhost").expect("static name");
        let conn = ClientConnection::new(cfg, server).map_err(|e| io_err(e.to_string()))?;
        let mut c = Client {
            tls: StreamOwned::new(conn, sock),
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            name: name.clone(),
        };
        while c.tls.conn.is_handshaking() {
            c.tls.conn.complete_io(&mut c.tls.sock)?;
        }
        // Send our Finished now, as OpenSSL-based devices do, before the CONNECT.
        while c.tls.conn.wants_write() {
            c.tls.conn.write_tls(&mut c.tls.sock)?;
        }
        let mut connect = v4::Connect::new(name.clone());
        connect.keep_alive = t.keep_alive;
        connect.clean_session = true;
        connect
            .write(&mut c.wbuf)
            .map_err(|e| io_err(format!("{e:?}")))?;
        c.flush_wbuf()?;
        match c.read_packet()? {
            Some(Packet::ConnAck(ack)) if ack.code == v4::ConnectReturnCode::Success => Ok(c),
            Some(Packet::ConnAck(ack)) => Err(io_err(format!("{name}: CONNACK {:?}", ack.code))),
            Some(p) => Err(io_err(format!("{name}: expected CONNACK, got {p:?}"))),
            None => Err(io_err(format!("{name}: no CONNACK within the timeout"))),
        }
    }

    pub fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        self.tls.sock.set_read_timeout(Some(d))
    }

    fn flush_wbuf(&mut self) -> io::Result<()> {
        let r = self.tls.write_all(&self.wbuf);
        self.wbuf.clear();
        r?;
        self.tls.flush()
    }

    /// Encodes one PUBLISH and writes it as its own TLS record, as a device would.
    pub fn publish(&mut self, topic: &str, qos: QoS, pkid: u16, payload: &[u8]) -> io::Result<()> {
        let mut p = v4::Publish::new(topic, qos, payload.to_vec());
        p.pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
        p.write(&mut self.wbuf)
            .map_err(|e| io_err(format!("{e:?}")))?;
        self.flush_wbuf()
    }

    /// SUBSCRIBE to `filters` (QoS 0) and wait for the SUBACK; returns its return codes as bytes.
    pub fn subscribe(&mut self, pkid: u16, filters: &[String]) -> io::Result<Vec<u8>> {
        let mut s = v4::Subscribe::empty_subscribe();
        for f in filters {
            s.add(f.clone(), QoS::AtMostOnce);
        }
        s.pkid = pkid;
        s.write(&mut self.wbuf)
            .map_err(|e| io_err(format!("{e:?}")))?;
        self.flush_wbuf()?;
        loop {
            match self.read_packet()? {
                Some(Packet::SubAck(a)) => {
                    return Ok(a
                        .return_codes
                        .iter()
                        .map(|c| match c {
                            v4::SubscribeReasonCode::Success(q) => *q as u8,
                            v4::SubscribeReasonCode::Failure => 0x80,
                        })
                        .collect())
                }
                Some(_) => continue,
                None => {
                    return Err(io_err(format!(
                        "{}: no SUBACK within the timeout",
                        self.name
                    )))
                }
            }
        }
    }

    /// Next packet, or `None` when the read timeout passes first. EOF is an error.
    pub fn read_packet(&mut self) -> io::Result<Option<Packet>> {
        loop {
            match v4::read(&mut self.rbuf, MAX_PACKET) {
                Ok(p) => return Ok(Some(p)),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => {
                    return Err(io_err(format!(
                        "{}: bad packet from broker: {e:?}",
                        self.name
                    )))
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.tls.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "broker closed",
                    ))
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends DISCONNECT and closes; errors are ignored (the broker may already be gone).
    pub fn disconnect(mut self) {
        let _ = v4::Disconnect.write(&mut self.wbuf);
        let _ = self.flush_wbuf();
        self.tls.conn.send_close_notify();
        let _ = self.tls.flush();
    }
}
