//! Shared helpers of the ISC benchmarks (see `benches/`).
