//! The local MQTT broker for group devices: TLS, certificate auth, sessions. Not built yet.
