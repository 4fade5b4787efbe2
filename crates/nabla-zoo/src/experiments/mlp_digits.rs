//! `mlp-digits`: an MLP on the UCI 8×8 handwritten digits (the default demo and fast tests).

use crate::classify::{self, Setup};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::models::Mlp;
use nabla::data::datasets;
use nabla::nn::Module;
use nabla::optim::Adam;
use nabla::rand::{SeedableRng, rngs::StdRng};

/// See the module docs.
pub struct MlpDigits;

impl Experiment for MlpDigits {
    fn spec(&self) -> Spec {
        Spec {
            name: "mlp-digits",
            summary: "MLP 64-128-128-10 on the UCI 8x8 digits (1,797 images, 20% held out)",
            runtime: "~5 s; --quick ~1 s",
            options: vec![
                OptSpec::int("hidden", "hidden units per layer", 128).range(1, 65536),
                OptSpec::float("lr", "Adam learning rate", 2e-3).greater_than(0.0),
                OptSpec::int("batch-size", "examples per step", 32).range(1, 1 << 20),
                OptSpec::int(
                    "epochs",
                    "passes over the training set (unless --steps)",
                    40,
                )
                .range(1, 1_000_000)
                .quick(8),
                OptSpec::path(
                    "data",
                    "digits CSV (gz or plain) [default: the copy in data/digits]",
                ),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let path = cfg
            .path("data")
            .unwrap_or_else(|| datasets::bundled_data_dir().join("digits/digits.csv.gz"));
        let data = datasets::digits(&path).map_err(|e| ZooError::Data(e.to_string()))?;
        // The held-out 20% depends only on the data, not on the run's seed.
        let (train, test) = data.split(0.8, 20_231_122);
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let hidden = cfg.usize("hidden");
        let mut model = Mlp::new(&[64, hidden, hidden, 10], 0.0, &mut rng);
        let mut opt = Adam::new(cfg.f64("lr"));
        let batch = cfg.usize("batch-size");
        let steps = cfg.steps_for_epochs(cfg.usize("epochs"), train.len() / batch)?;
        let (n_train, n_test, params) = (train.len(), test.len(), model.num_parameters());
        let out = classify::run(
            Setup {
                model: &mut model,
                opt: &mut opt,
                train,
                test,
                batch_size: batch,
                steps,
                augment: None,
                seed: cfg.seed,
                lr_at: None,
            },
            ctx,
        )?;
        Ok(out.report("mlp-digits", "held-out", steps, (params, n_train, n_test)))
    }
}
