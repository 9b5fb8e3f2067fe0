//! Composition: builds the router, work queue, broker and cloud link from the config and runs
//! them on the one executor. Not built yet.
