//! Tensor operations, one file per family. In each file an operation's forward kernel, its reverse
//! rule (vjp) and its forward rule (jvp) sit together.

mod arith;
mod compare;
pub(crate) mod conv;
pub(crate) mod estimators;
pub(crate) mod index;
mod indices;
mod matmul;
mod pool;
mod reduce;
mod shape;
mod softmax;
pub(crate) mod unary;
