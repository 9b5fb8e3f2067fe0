//! The `log` backend: Greengrass log layout under `WRITE_DIR/ggc/var/log`. Not built yet.
