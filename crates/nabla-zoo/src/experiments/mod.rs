//! The experiments.

mod cartpole;
mod cnn_mnist;
mod lstm_adding;
mod mlp_digits;
mod mlp_mnist;
mod ntp_countries;
mod pendulum;
mod trebuchet;

pub use cartpole::CartPoleControl;
pub use cnn_mnist::CnnMnist;
pub use lstm_adding::LstmAdding;
pub use mlp_digits::MlpDigits;
pub use mlp_mnist::MlpMnist;
pub use ntp_countries::NtpCountries;
pub use pendulum::PendulumControl;
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
        Box::new(NtpCountries),
    ]
}
