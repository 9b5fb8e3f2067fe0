//! `sprig demo`: a self-contained playground root. Not built yet.
