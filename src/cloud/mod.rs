//! The link to AWS IoT Core (or any MQTT 3.1.1 broker): TLS, ALPN, proxy, backoff. Not built yet.
