//! End-to-end tests: enforce (placeholder until written).
