//! The CPU kernels moved to [`crate::backend::cpu`]; these re-exports keep older paths compiling.

#[allow(unused_imports)]
pub(crate) use crate::backend::cpu::{PAR_THRESHOLD, with_dtype};
