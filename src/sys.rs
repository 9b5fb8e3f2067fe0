//! The only `unsafe` in sprig: thin wrappers over libc calls. Not built yet.
