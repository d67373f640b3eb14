//! Benchmarks live in `benches/*.rs`; see `cargo bench -p vton-benches`.
