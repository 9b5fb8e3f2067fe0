//! `coreThing.networkProxy` for MQTT: which hosts bypass it, and the HTTP CONNECT exchange
//! (seed-A §4.4). Sans-IO: builds the request bytes and parses the reply.

use crate::config::NetworkProxy;

/// Largest proxy reply header accepted, bytes.
pub const MAX_CONNECT_REPLY_BYTES: usize = crate::limits::CLOUD_PROXY_REPLY_MAX_BYTES;

/// `true` when `host` is in `noProxyAddresses`. Entries are split on commas by the config; here
/// each is trimmed, any `scheme://` and `:port` are stripped, and it matches the exact host or
/// IP, or a domain suffix when written `.example.com` or `*.example.com`
/// (the guide leaves the rules open; this is what curl does).
pub fn bypass(proxy: &NetworkProxy, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    proxy.no_proxy_addresses.iter().any(|entry| {
        let mut e = entry.trim();
        if let Some((_, rest)) = e.split_once("://") {
            e = rest;
        }
        e = e.split('/').next().unwrap_or("");
        if !e.starts_with('[') {
            if let Some((h, port)) = e.rsplit_once(':') {
                if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
                    e = h;
                }
            }
        }
        let e = e.trim_start_matches('*').to_ascii_lowercase();
        if e == "*" {
            return true;
        }
        match e.strip_prefix('.') {
            Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
            None => !e.is_empty() && host == e,
        }
    })
}

/// The CONNECT request for `host:port`, with Basic auth when the proxy has a user.
pub fn connect_request(proxy: &NetworkProxy, host: &str, port: u16) -> Vec<u8> {
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if let Some(user) = &proxy.username {
        let pass = proxy.password.as_deref().unwrap_or("");
        req.push_str("Proxy-Authorization: Basic ");
        req.push_str(&base64(format!("{user}:{pass}").as_bytes()));
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Parses the proxy's reply: `Ok(None)` = need more bytes, `Ok(Some(n))` = tunnel open and the
/// header took `n` bytes, `Err` = refused (with the status line) or malformed.
pub fn parse_connect_reply(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_CONNECT_REPLY_BYTES {
            return Err("proxy reply header too long".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let status = head.lines().next().unwrap_or("");
    let mut parts = status.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("malformed proxy reply {status:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("malformed proxy reply {status:?}"));
    }
    if code.len() == 3 && code.starts_with('2') {
        Ok(Some(end + 4))
    } else if code == "407" || code == "401" {
        // tinyproxy answers a bad BasicAuth with 401.
        Err(format!("proxy refused the credentials: {status}"))
    } else {
        Err(format!("proxy refused CONNECT: {status}"))
    }
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials only.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(no: &[&str], user: Option<&str>) -> NetworkProxy {
        NetworkProxy {
            url: "http://p:3128".into(),
            tls: false,
            host: "p".into(),
            port: 3128,
            username: user.map(Into::into),
            password: Some("pass@word1357".into()),
            no_proxy_addresses: no.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn no_proxy_matching() {
        let p = proxy(
            &[
                "http://128.12.34.56",
                " www.mywebsite.com ",
                ".corp.example",
                "*.iot.test",
                "h:8883",
            ],
            None,
        );
        assert!(bypass(&p, "128.12.34.56"));
        assert!(bypass(&p, "WWW.mywebsite.com"));
        assert!(!bypass(&p, "mywebsite.com"));
        assert!(bypass(&p, "a.corp.example"));
        assert!(bypass(&p, "corp.example"));
        assert!(bypass(&p, "x-ats.iot.test"));
        assert!(!bypass(&p, "xcorp.example"));
        assert!(bypass(&p, "h"));
        assert!(!bypass(&p, "128.12.34.5"));
    }

    #[test]
    fn connect_request_with_basic_auth() {
        let req = String::from_utf8(connect_request(
            &proxy(&[], Some("Mary_Major")),
            "x.iot",
            8883,
        ))
        .unwrap();
        assert!(req.starts_with("CONNECT x.iot:8883 HTTP/1.1\r\n"));
        assert!(req.contains(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(b"Mary_Major:pass@word1357")
        )));
        assert!(req.ends_with("\r\n\r\n"));
        assert!(
            !String::from_utf8(connect_request(&proxy(&[], None), "x", 1))
                .unwrap()
                .contains("Authorization")
        );
    }

    #[test]
    fn connect_reply() {
        assert_eq!(parse_connect_reply(b"HTTP/1.1 200 Conn"), Ok(None));
        assert_eq!(
            parse_connect_reply(b"HTTP/1.0 200 Connection established\r\n\r\n"),
            Ok(Some(39))
        );
        assert!(
            parse_connect_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(parse_connect_reply(b"SSH-2.0\r\n\r\n").is_err());
    }
}
