//! Differentiable simulators: plain Rust over nabla tensors, batched over episodes (every state
//! variable is a `[B]` tensor). Their gradients come from nabla's reverse mode through the
//! simulation loop; nothing here is hand-differentiated.

pub mod cartpole;
pub mod pendulum;
pub mod trebuchet;
