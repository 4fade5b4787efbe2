//! The experiments.

mod mlp_digits;
mod mlp_mnist;

pub use mlp_digits::MlpDigits;
pub use mlp_mnist::MlpMnist;

use crate::experiment::Experiment;

/// Every experiment, in listing order.
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![Box::new(MlpDigits), Box::new(MlpMnist)]
}
