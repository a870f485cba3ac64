//! End-to-end tests: audit (placeholder until written).
