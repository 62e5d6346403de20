//! The fuzz targets' checks, shared with `tests/it/fuzz_corpus.rs` (which
//! includes `checks.rs` itself, on the stable toolchain, without libFuzzer).
pub mod checks;
