#![warn(missing_docs)]
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
//!
//! # Where to start
//!
//! - The guides in the repository's `docs/` folder (getting started, gradients through control
//!   flow, custom operations, training, simulation, higher-order derivatives, performance), whose
//!   code is compiled and run as doctests of this crate.
//! - The examples in `crates/nabla/examples/` (`cargo run --example grad_control_flow`, `custom_op`,
//!   `train_mlp`, `ode_fit`, `ode_event_fit`, `hvp`), which `cargo test` runs too.
//! - In this reference: [`Tensor`] and its operations, the transforms ([`grad`], [`value_and_grad`],
//!   [`vjp`], [`jvp`], [`hvp`], [`jacobian`]), [`CustomOp`], [`nn`], [`optim`], [`ode`], [`data`],
//!   [`io`] and [`testing`].
//!
//! # Cargo features
//!
//! - `ndarray` (off by default): conversions between [`Tensor`] and `ndarray` arrays:
//!   `From<ndarray::Array<T, D>>` and `From<ndarray::ArrayView<T, D>>` for `Tensor`,
//!   `Tensor::from_ndarray` and `Tensor::to_ndarray`, for `f32` and `f64` of any dimension.

extern crate self as nabla;

pub mod autodiff;
mod backend;
pub mod compile;
pub mod data;
mod device;
mod dtype;
pub mod io;
pub mod meta;
pub mod nn;
pub mod ode;
mod ops;
pub mod optim;
mod tensor;
pub mod testing;

#[cfg(feature = "ndarray")]
mod interop;

pub use autodiff::{
    CustomOp, Grads, HvpMode, JvpOutput, NoGradGuard, checkpoint, grad, hessian_vector_product,
    hvp, hvp_joint, hvp_with, jacobian, jvp, no_grad, value_and_grad, vjp,
};
pub use compile::{CompileStats, Compiled, compile};
pub use device::Device;
pub use dtype::{DType, Element};
pub use ops::conv::{Conv1dOpts, Conv2dOpts};
pub use ops::estimators::{soft_select, straight_through};
pub use ops::index::Indices;
pub use ops::unary::{SELU_ALPHA, SELU_SCALE};
pub use tensor::{AllAxes, Axis, AxisSet, Shape, Tensor};

/// Random number generation (re-exported `rand`), for seeding constructors such as
/// [`Tensor::randn`].
pub use rand;

/// The names most programs need.
pub mod prelude {
    pub use crate::{
        AllAxes, Conv1dOpts, Conv2dOpts, CustomOp, DType, Device, Grads, Indices, Shape, Tensor,
        checkpoint, grad, hvp, jacobian, jvp, no_grad, straight_through, value_and_grad, vjp,
    };
}

/// The guides in `docs/` are compiled and run as doctests, so their code cannot drift from the API.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../../README.md")]
    struct Readme;
    #[doc = include_str!("../../../docs/getting-started.md")]
    struct GettingStarted;
    #[doc = include_str!("../../../docs/control-flow.md")]
    struct ControlFlow;
    #[doc = include_str!("../../../docs/custom-ops.md")]
    struct CustomOps;
    #[doc = include_str!("../../../docs/training.md")]
    struct Training;
    #[doc = include_str!("../../../docs/simulation.md")]
    struct Simulation;
    #[doc = include_str!("../../../docs/ode.md")]
    struct Ode;
    #[doc = include_str!("../../../docs/higher-order.md")]
    struct HigherOrder;
    #[doc = include_str!("../../../docs/meta-learning.md")]
    struct MetaLearning;
    #[doc = include_str!("../../../docs/performance.md")]
    struct Performance;
}
