//! nono: learn, audit and enforce least-privilege sandboxes for AI agents.
//!
//! Data flows one way: [`record`] watches a process tree in the kernel and
//! yields [`event::Event`]s, [`store`] keeps them in SQLite, [`learn`] turns
//! them into a [`profile::Profile`], and [`enforce`] applies a profile with
//! Landlock and seccomp. [`kernel`] answers what this kernel supports.
//! [`cli`] is the only module that prints or parses arguments.

pub mod cli;
pub mod enforce;
pub mod event;
pub mod fleet;
pub mod kernel;
pub mod learn;
pub mod profile;
pub mod record;
pub mod report;
pub mod store;
