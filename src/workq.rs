//! The one bounded work queue shared by every producer (`runtime.maxWorkItemCount`). Not built yet.
