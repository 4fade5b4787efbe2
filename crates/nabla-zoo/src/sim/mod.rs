//! Simulators written as plain Rust over nabla tensors: their gradients come from autodiff.

pub mod trebuchet;
