//! Shared helpers of the ISC benchmarks (see `benches/`).

pub mod pathways;
