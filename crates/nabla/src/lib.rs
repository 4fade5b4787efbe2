//! # nabla: differentiable programming for Rust
//!
//! n-d tensors (`f32`, `f64`) with NumPy broadcasting, and automatic differentiation through any Rust
//! program that computes with them: loops, branches on values, recursion, simulators, solvers,
//! training loops.
//!
//! Two faces over one engine:
//!
//! ```
//! use nabla::{grad, Tensor};
//!
//! // JAX-style transforms that compose: the derivative of a function with a loop and a branch
//! let f = |x: &Tensor| {
//!     let mut y = x.clone();
//!     for _ in 0..3 {
//!         y = if y.item() > 1.0 { y.sqrt() } else { &y * &y + 1.0 };
//!     }
//!     y
//! };
//! let df = grad(f);
//! let x = Tensor::scalar(0.5f64);
//! assert!(df(&x).item() > 0.0);
//!
//! // PyTorch-style: variables and `backward`
//! let w = Tensor::from_vec(vec![0.5f64, -1.0], [2]).variable();
//! let loss = (&w * &w).sum();
//! let grads = loss.backward();
//! assert_eq!(grads.get(&w).unwrap().to_vec::<f64>(), vec![1.0, -2.0]);
//! ```

extern crate self as nabla;

pub mod autodiff;
pub mod data;
mod device;
mod dtype;
pub mod io;
pub mod nn;
mod ops;
pub mod optim;
mod tensor;
pub mod testing;

#[cfg(feature = "ndarray")]
mod interop;

pub use autodiff::{
    CustomOp, Grads, NoGradGuard, checkpoint, grad, hessian_vector_product, hvp, jacobian, jvp,
    no_grad, value_and_grad, vjp,
};
pub use device::Device;
pub use dtype::{DType, Element};
pub use ops::conv::{Conv1dOpts, Conv2dOpts};
pub use ops::estimators::{soft_select, straight_through};
pub use ops::index::Indices;
pub use ops::unary::{SELU_ALPHA, SELU_SCALE};
pub use tensor::{Shape, Tensor};

/// Random number generation (re-exported `rand`), for seeding constructors such as
/// [`Tensor::randn`].
pub use rand;

/// The names most programs need.
pub mod prelude {
    pub use crate::{
        Conv1dOpts, Conv2dOpts, CustomOp, DType, Device, Grads, Indices, Shape, Tensor, checkpoint,
        grad, hvp, jacobian, jvp, no_grad, straight_through, value_and_grad, vjp,
    };
}
