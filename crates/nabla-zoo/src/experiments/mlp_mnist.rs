//! `mlp-mnist`: an MLP on MNIST (or any data set in the MNIST IDX layout via `--data`).

use crate::classify::{self, Setup};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::models::Mlp;
use nabla::data::datasets;
use nabla::nn::Module;
use nabla::optim::{Adam, CosineLr, LrSchedule};
use nabla::rand::{SeedableRng, rngs::StdRng};

/// See the module docs.
pub struct MlpMnist;

impl Experiment for MlpMnist {
    fn spec(&self) -> Spec {
        Spec {
            name: "mlp-mnist",
            summary: "MLP 784-512-256-10 with dropout on MNIST (60,000 train / 10,000 test)",
            runtime: "~2 min; --quick ~5 s",
            options: vec![
                OptSpec::int(
                    "hidden",
                    "units in the first hidden layer (the second has half)",
                    512,
                )
                .range(2, 65536)
                .quick(128),
                OptSpec::float("lr", "Adam learning rate (cosine-annealed)", 1e-3)
                    .greater_than(0.0)
                    .quick(3e-3),
                OptSpec::float("dropout", "dropout after hidden layers", 0.2)
                    .min(0.0)
                    .less_than(1.0),
                OptSpec::int("batch-size", "examples per step", 128).range(1, 1 << 20),
                OptSpec::int(
                    "epochs",
                    "passes over the training set (unless --steps)",
                    15,
                )
                .range(1, 1_000_000)
                .quick(2),
                OptSpec::int(
                    "train-limit",
                    "use only the first N training images (0: all)",
                    0,
                )
                .quick(6000),
                OptSpec::path(
                    "data",
                    "folder with MNIST-layout IDX files, gz or raw [default: data/mnist]",
                ),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let dir = cfg
            .path("data")
            .unwrap_or_else(|| datasets::bundled_data_dir().join("mnist"));
        let (mut train, test) = datasets::mnist(&dir).map_err(|e| ZooError::Data(e.to_string()))?;
        let limit = cfg.usize("train-limit");
        if limit > 0 && limit < train.len() {
            train = train.subset(&(0..limit).collect::<Vec<_>>());
        }
        let features: usize = train.inputs().dims()[1..].iter().product();
        let classes = train
            .num_classes()
            .unwrap_or(10)
            .max(test.num_classes().unwrap_or(10));
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let h = cfg.usize("hidden");
        let mut model = Mlp::new(&[features, h, h / 2, classes], cfg.f64("dropout"), &mut rng);
        let lr = cfg.f64("lr");
        let mut opt = Adam::new(lr);
        let batch = cfg.usize("batch-size");
        let steps = cfg.steps_for_epochs(cfg.usize("epochs"), train.len() / batch)?;
        let schedule = CosineLr {
            base: lr,
            min: lr * 0.01,
            total: steps as usize,
        };
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
                lr_at: Some(Box::new(move |s| schedule.lr(s as usize))),
            },
            ctx,
        )?;
        Ok(out.report("mlp-mnist", "test", steps, (params, n_train, n_test)))
    }
}
