//! The anti-corruption layer: translators between the legacy contract that clients speak and a
//! new service's own model. Filled by the anti-corruption issue.
//!
//! **Invariant:** pure — no I/O, no clocks, no sockets; and the only crate that knows contract
//! shapes.
#![forbid(unsafe_code)]
