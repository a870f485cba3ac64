//! End-to-end tests: profiles (placeholder until written).
