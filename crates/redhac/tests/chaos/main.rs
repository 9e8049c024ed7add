//! The chaos suite's consistency checker (its unit tests run everywhere; the
//! container-driven suite itself comes with the HA runtime).

#[allow(dead_code)]
mod checker;
