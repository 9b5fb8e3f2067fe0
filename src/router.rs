//! Managed subscriptions: the table of (Source, Subject, Target) and fast matching. Not built yet.
