//! A small, bounded JSON reader for config.json, group.json and (later) shadow and IPC
//! documents. Not built yet: see the config issue.
