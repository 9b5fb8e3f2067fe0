//! MQTT topic names and filters: validation and MQTT 3.1.1 matching. Not built yet.
