//! nono: learn, audit and enforce least-privilege sandboxes for AI agents.
//!
//! Data flows one way: [`record`] watches a process tree in the kernel and
//! yields [`event::Event`]s, [`store`] keeps them in SQLite, [`learn`] turns
//! them into a [`profile::Profile`], and [`enforce`] applies a profile with
//! Landlock and seccomp. [`kernel`] answers what this kernel supports.
//! [`cli`] is the only module that prints or parses arguments. [`invoker`]
//! is who nono acts for under sudo: every file it writes is written as them.
//! [`trust`] signs and checks profiles and seals audit sessions (above
//! `profile`, `store` and `fleet`).
//! [`snapshot`] takes what a command may change before it runs, and puts
//! it back (`nono rollback`).

pub mod cli;
pub mod enforce;
pub mod event;
pub mod fleet;
pub mod invoker;
pub mod kernel;
pub mod learn;
pub mod profile;
pub mod proxy;
pub mod record;
pub mod report;
pub mod snapshot;
pub mod store;
pub mod trust;
