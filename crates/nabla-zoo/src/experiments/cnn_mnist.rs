//! `cnn-mnist`: a small CNN with batch norm and dropout on MNIST (or any IDX data set via `--data`).

use crate::classify::{self, Setup};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::models::Cnn;
use nabla::data::{Augment, datasets};
use nabla::nn::Module;
use nabla::optim::{Adam, CosineLr, LrSchedule};
use nabla::rand::{SeedableRng, rngs::StdRng};

/// See the module docs.
pub struct CnnMnist;

impl Experiment for CnnMnist {
    fn spec(&self) -> Spec {
        Spec {
            name: "cnn-mnist",
            summary: "CNN (2 conv blocks with batch norm, dropout head) on MNIST, shift augmentation",
            runtime: "~8 min; --quick ~10 s",
            options: vec![
                OptSpec::int(
                    "width",
                    "filters in the first conv block (twice that in the second)",
                    32,
                )
                .range(1, 1024)
                .quick(8),
                OptSpec::float("lr", "Adam learning rate (cosine-annealed)", 2e-3)
                    .greater_than(0.0),
                OptSpec::float("dropout", "dropout before the classifier", 0.3)
                    .min(0.0)
                    .less_than(1.0),
                OptSpec::int("shift", "random shift augmentation, in pixels", 2).range(0, 64),
                OptSpec::int("batch-size", "examples per step", 64).range(1, 1 << 20),
                OptSpec::int("epochs", "passes over the training set (unless --steps)", 4)
                    .range(1, 1_000_000)
                    .quick(2),
                OptSpec::int(
                    "train-limit",
                    "use only the first N training images (0: all)",
                    0,
                )
                .quick(2048),
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
        let dims = train.inputs().dims().to_vec();
        let (channels, side) = match dims.len() {
            3 => (1, dims[1]),
            4 => (dims[1], dims[2]),
            _ => {
                return Err(ZooError::Data(format!(
                    "cnn-mnist needs images [N, H, W] or [N, C, H, W], got {dims:?}"
                )));
            }
        };
        // Two 2x2 poolings and a classifier sized for side/4 x side/4: square images of at least
        // 4x4 pixels (the loader has checked that train and test agree).
        let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        if h != w || h < 4 {
            return Err(ZooError::Data(format!(
                "{}: cnn-mnist needs square images of at least 4x4 pixels, got {h}x{w}",
                dir.display()
            )));
        }
        let classes = train
            .num_classes()
            .unwrap_or(10)
            .max(test.num_classes().unwrap_or(10));
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut model = Cnn::new(
            channels,
            side,
            cfg.usize("width"),
            classes,
            cfg.f64("dropout"),
            &mut rng,
        );
        let lr = cfg.f64("lr");
        let mut opt = Adam::new(lr);
        let batch = cfg.usize("batch-size");
        let steps = cfg.steps_for_epochs(cfg.usize("epochs"), train.len() / batch)?;
        let schedule = CosineLr {
            base: lr,
            min: lr * 0.01,
            total: steps as usize,
        };
        let shift = cfg.usize("shift");
        let (n_train, n_test, params) = (train.len(), test.len(), model.num_parameters());
        let out = classify::run(
            Setup {
                model: &mut model,
                opt: &mut opt,
                train,
                test,
                batch_size: batch,
                steps,
                augment: (shift > 0).then(|| Augment::new().shift(shift)),
                seed: cfg.seed,
                lr_at: Some(Box::new(move |s| schedule.lr(s as usize))),
            },
            ctx,
        )?;
        Ok(out.report("cnn-mnist", "test", steps, (params, n_train, n_test)))
    }
}
