//! Certificates: the group CA, the local server certificate, certificate ids. Not built yet.
