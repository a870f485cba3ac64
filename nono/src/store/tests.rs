//! Store unit tests.
