//! Profiles: the JSON format, built-ins, validation and merging.
//! `rights` is the shared vocabulary of Landlock filesystem rights.

pub mod rights;
