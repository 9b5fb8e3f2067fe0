//! The host's interface addresses, for the server certificate's SANs.
//!
//! NOTE(lead): this is sprig's one `unsafe` outside `sys`; move it to `sys` when that module
//! takes libc wrappers (it is self-contained: one function, getifaddrs/freeifaddrs).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::limits::MAX_SERVER_CERT_ADDRS;

/// The addresses of every interface that is up, except loopback ones (IPv6 link-local included:
/// a client may dial `fe80::…%eth0`): sorted, without duplicates, at most
/// [`MAX_SERVER_CERT_ADDRS`]. An error means "unknown", not "none": callers keep what
/// they had.
pub fn interface_addrs() -> io::Result<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs only writes the head of a list it allocates; we free it below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut node = head;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*node };
        node = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        if flags & libc::IFF_UP == 0 || flags & libc::IFF_LOOPBACK != 0 || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose sa_family says its real
        // type; we read it as sockaddr_in/sockaddr_in6 only for the matching family.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if !addr.is_loopback() && !addr.is_unspecified() {
            addrs.push(addr);
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(normalize(addrs))
}

/// Sorted, deduplicated, loopback removed, capped: the form the server certificate records.
pub(super) fn normalize(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.retain(|a| !a.is_loopback() && !a.is_unspecified());
    addrs.sort_unstable();
    addrs.dedup();
    addrs.truncate(MAX_SERVER_CERT_ADDRS);
    addrs
}
