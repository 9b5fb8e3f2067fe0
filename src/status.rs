//! `sprig status`: what the running daemon reports about itself. Not built yet.
