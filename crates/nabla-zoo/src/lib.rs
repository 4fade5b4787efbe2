//! The nabla zoo: the experiments that define differentiable programming, as library code. Each
//! experiment is a function from a [`Config`](experiment::Config) to a
//! [`Report`](experiment::Report); the `nabla` CLI runs them with progress bars, plots and
//! checkpoints. Nothing here prints.

pub mod babi;
pub mod classify;
pub mod experiment;
pub mod experiments;
pub mod lstm_optimizer;
pub mod maml;
pub mod models;
pub mod plasticity;
pub mod sim;
pub mod train;

use experiment::Experiment;

/// Every experiment, in the order `nabla list` shows them.
pub fn registry() -> Vec<Box<dyn Experiment>> {
    experiments::all()
}

/// The experiment called `name`.
pub fn find(name: &str) -> Option<Box<dyn Experiment>> {
    registry().into_iter().find(|e| e.spec().name == name)
}
