//! End-to-end tests: learn (placeholder until written).
