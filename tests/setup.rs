//! End-to-end tests: setup (placeholder until written).
