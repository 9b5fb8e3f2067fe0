//! The host's interface addresses, for the server certificate's SANs.
//!
//! The libc call lives in [`crate::sys::interface_addrs`].

use std::io;
use std::net::IpAddr;

use crate::limits::MAX_SERVER_CERT_ADDRS;
use crate::sys;

/// The addresses of every interface that is up, except loopback ones (IPv6 link-local included:
/// a client may dial `fe80::…%eth0`): sorted, without duplicates, at most
/// [`MAX_SERVER_CERT_ADDRS`]. An error means "unknown", not "none": callers keep what
/// they had.
pub fn interface_addrs() -> io::Result<Vec<IpAddr>> {
    sys::interface_addrs().map(normalize)
}

/// Sorted, deduplicated, loopback removed, capped: the form the server certificate records.
pub(super) fn normalize(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.retain(|a| !a.is_loopback() && !a.is_unspecified());
    addrs.sort_unstable();
    addrs.dedup();
    addrs.truncate(MAX_SERVER_CERT_ADDRS);
    addrs
}
