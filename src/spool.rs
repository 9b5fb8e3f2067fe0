//! Store-and-forward for cloud-bound messages: memory ring or file segments. Not built yet.
