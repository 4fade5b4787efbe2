//! The experiments.

mod aim_net;
mod cartpole;
mod cnn_mnist;
mod dnc_copy;
mod dnc_recall;
mod dnc_scaling;
pub mod dnc_tasks;
mod hypergrad;
mod learned_optimizer;
mod lstm_adding;
mod maml_sine;
mod memnn_babi;
mod mlp_digits;
mod mlp_mnist;
mod nalu_arith;
mod ntp_countries;
mod pendulum;
mod plasticity;
mod trebuchet;

pub use cartpole::CartPoleControl;
pub use cnn_mnist::CnnMnist;
pub use dnc_copy::DncCopy;
pub use dnc_recall::DncRecall;
pub use dnc_scaling::DncScaling;
pub use hypergrad::Hypergrad;
pub use learned_optimizer::LearnedOptimizer;
pub use lstm_adding::LstmAdding;
pub use maml_sine::MamlSine;
pub use memnn_babi::MemnnBabi;
pub use mlp_digits::MlpDigits;
pub use mlp_mnist::MlpMnist;
pub use nalu_arith::NaluArith;
pub use ntp_countries::NtpCountries;
pub use pendulum::PendulumControl;
pub use plasticity::Plasticity;
pub use trebuchet::Trebuchet;

use crate::experiment::Experiment;

/// Every experiment, in listing order.
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(MlpDigits),
        Box::new(MlpMnist),
        Box::new(CnnMnist),
        Box::new(LstmAdding),
        Box::new(CartPoleControl),
        Box::new(PendulumControl),
        Box::new(Trebuchet),
        Box::new(Hypergrad),
        Box::new(MamlSine),
        Box::new(LearnedOptimizer),
        Box::new(Plasticity),
        Box::new(MemnnBabi),
        Box::new(NaluArith),
        Box::new(DncCopy),
        Box::new(DncRecall),
        Box::new(DncScaling),
        Box::new(NtpCountries),
    ]
}
