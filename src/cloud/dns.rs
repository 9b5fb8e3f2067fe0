//! Name resolution for the cloud link without blocking the one thread.
//!
//! `getaddrinfo` blocks; with the uplink down it can hold the event loop (and so every local
//! device) for the resolver's full timeout on every reconnect attempt. This is a small stub
//! resolver instead: IP literals, then `/etc/hosts`, then an A query over UDP to each
//! `nameserver` in `/etc/resolv.conf` (the recursive resolver follows CNAMEs for us).
//! IPv4 only: AWS IoT endpoints have IPv4 addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;

use crate::limits::{CLOUD_DNS_ATTEMPTS, CLOUD_DNS_TIMEOUT_MS};

/// Addresses for `host:port`.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // Streamed: a router's hosts file can hold an ad-block list of megabytes.
    let found = match std::fs::File::open("/etc/hosts") {
        Ok(f) => hosts_lookup(std::io::BufReader::new(f), host),
        Err(_) => Vec::new(),
    };
    if !found.is_empty() {
        return Ok(found
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect());
    }
    let servers = nameservers(Path::new("/etc/resolv.conf"));
    let ips = query(host, &servers).await?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port))
        .collect())
}

/// Addresses a hosts file (`/etc/hosts`) gives `host` (IPv4 first), read line by line (up to
/// the first line that is not UTF-8).
pub fn hosts_lookup(hosts: impl std::io::BufRead, host: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = hosts
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("");
            let mut f = l.split_whitespace();
            let ip: IpAddr = f.next()?.parse().ok()?;
            f.any(|n| n.eq_ignore_ascii_case(host)).then_some(ip)
        })
        .collect();
    out.sort_by_key(|ip| ip.is_ipv6());
    out
}

/// `nameserver` lines of resolv.conf (127.0.0.1 when there are none, as the C library does).
pub fn nameservers(resolv_conf: &Path) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(resolv_conf).unwrap_or_default();
    let mut v: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = f.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect();
    if v.is_empty() {
        v.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    v
}

/// Asks each server in turn, [`CLOUD_DNS_ATTEMPTS`] rounds, for the A records of `host`.
pub async fn query(host: &str, servers: &[SocketAddr]) -> Result<Vec<Ipv4Addr>, String> {
    let mut last = format!("cannot resolve {host}: no name server answered");
    for _ in 0..CLOUD_DNS_ATTEMPTS {
        for server in servers {
            let id = random_id();
            let q = build_query(id, host)
                .ok_or_else(|| format!("{host:?} is not a valid host name"))?;
            match ask(*server, &q, id).await {
                Ok(Answer::Addresses(ips)) if !ips.is_empty() => return Ok(ips),
                Ok(Answer::Addresses(_)) => {
                    last = format!("cannot resolve {host}: no IPv4 address")
                }
                Ok(Answer::NoSuchName) => {
                    return Err(format!("cannot resolve {host}: no such name"))
                }
                Ok(Answer::Failed(rcode)) => {
                    last = format!("cannot resolve {host}: {server} answered error {rcode}")
                }
                Err(e) => last = format!("cannot resolve {host}: {server}: {e}"),
            }
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, q: &[u8], id: u16) -> Result<Answer, String> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| "bad bind address")?;
    let sock = Async::<UdpSocket>::bind(local).map_err(|e| e.to_string())?;
    sock.send_to(q, server).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let wait = async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            // Ignore stray datagrams; a wrong id or sender is not our answer.
            if from == server {
                if let Ok(a) = parse_response(&buf[..n], id) {
                    return Ok(a);
                }
            }
        }
    };
    future::or(wait, async {
        Timer::after(Duration::from_millis(CLOUD_DNS_TIMEOUT_MS)).await;
        Err(format!("no answer within {CLOUD_DNS_TIMEOUT_MS} ms"))
    })
    .await
}

fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u16::from_le_bytes(b)
}

/// A recursive A query for `name`; `None` if the name cannot be encoded.
pub fn build_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    Some(q)
}

/// What a name server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Addresses(Vec<Ipv4Addr>),
    NoSuchName,
    Failed(u8),
}

/// Parses a response to query `id`. Never panics on any input.
pub fn parse_response(buf: &[u8], id: u16) -> Result<Answer, &'static str> {
    let u16_at = |i: usize| -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes([
            *buf.get(i).ok_or("short")?,
            *buf.get(i + 1).ok_or("short")?,
        ]))
    };
    if u16_at(0)? != id {
        return Err("wrong id");
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err("not a response");
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Ok(Answer::NoSuchName),
        rcode => return Ok(Answer::Failed(rcode)),
    }
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(buf, i)? + 4;
    }
    let mut ips = Vec::new();
    for _ in 0..an {
        i = skip_name(buf, i)?;
        let (ty, class, len) = (u16_at(i)?, u16_at(i + 2)?, usize::from(u16_at(i + 8)?));
        let data = buf.get(i + 10..i + 10 + len).ok_or("short")?;
        if ty == 1 && class == 1 && len == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Ok(Answer::Addresses(ips))
}

/// Index just after the (possibly compressed) name at `i`.
fn skip_name(buf: &[u8], mut i: usize) -> Result<usize, &'static str> {
    loop {
        let len = *buf.get(i).ok_or("short")?;
        match len {
            0 => return Ok(i + 1),
            l if l & 0xc0 == 0xc0 => return Ok(i + 2),
            l if l & 0xc0 == 0 => i += 1 + usize::from(l),
            _ => return Err("bad label"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = build_query(0x1234, "a-ats.iot.eu-west-1.amazonaws.com.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..18], b"\x05a-ats");
        assert!(q.ends_with(&[
            9, b'a', b'm', b'a', b'z', b'o', b'n', b'a', b'w', b's', 3, b'c', b'o', b'm', 0, 0, 1,
            0, 1
        ]));
        assert!(build_query(1, "a..b").is_none());
        assert!(build_query(1, &"x".repeat(64)).is_none());
    }

    /// A real-shaped answer: CNAME then A, with name compression.
    fn response(id: u16, rcode: u8) -> Vec<u8> {
        let mut r = build_query(id, "x.iot.test").unwrap();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[7] = 2; // two answers
                  // CNAME: name = pointer to the question, rdata = "y" + pointer
        r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'y', 0xc0, 14]);
        // A: name = pointer, 192.0.2.7
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        r
    }

    #[test]
    fn response_parsing() {
        assert_eq!(
            parse_response(&response(7, 0), 7),
            Ok(Answer::Addresses(vec![Ipv4Addr::new(192, 0, 2, 7)]))
        );
        assert_eq!(parse_response(&response(7, 3), 7), Ok(Answer::NoSuchName));
        assert_eq!(parse_response(&response(7, 2), 7), Ok(Answer::Failed(2)));
        assert!(parse_response(&response(7, 0), 8).is_err());
        let full = response(7, 0);
        for cut in 0..full.len() {
            let _ = parse_response(&full[..cut], 7); // never panics
        }
        assert!(parse_response(&full[..full.len() - 1], 7).is_err());
    }

    #[test]
    fn hosts_and_resolv_conf() {
        let hosts =
            "# c\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.5 iot.lan  Broker # x\n";
        assert_eq!(
            hosts_lookup(hosts.as_bytes(), "LOCALHOST"),
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            hosts_lookup(hosts.as_bytes(), "broker"),
            ["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(hosts_lookup(hosts.as_bytes(), "iot").is_empty());
        assert_eq!(
            nameservers(Path::new("/nonexistent")),
            ["127.0.0.1:53".parse().unwrap()]
        );
    }

    #[test]
    fn real_udp_exchange_and_timeout() {
        // A one-answer name server on loopback: answers the first query, then goes silent.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        // Bound and never read: the query to it times out, then the next server answers.
        let silent_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent = silent_sock.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let mut r = buf[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9]);
            server.send_to(&r, from).unwrap();
        });
        let got = async_io::block_on(query("x.iot.test", &[silent, addr]));
        responder.join().unwrap();
        drop(silent_sock);
        assert_eq!(got, Ok(vec![Ipv4Addr::new(127, 0, 0, 9)]));
    }
}
