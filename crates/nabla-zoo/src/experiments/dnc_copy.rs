//! `dnc-copy`: the copy task (Graves et al. 2014, 2016): random 6-bit vectors of length 1-10, a
//! delimiter, then the sequence must be reproduced. A DNC (LSTM controller, 32 x 16 memory) and
//! an LSTM with about as many parameters train side by side; both are then tested on lengths 1-10
//! and on length 20, beyond the training lengths, where the DNC's memory should generalise.

use super::dnc_tasks::{
    BITS, COPY_INPUTS, LstmBaseline, SeqModel, bit_error_rate, copy_batch, dnc, masked_bce,
    model_options, training_options, weighting_heatmaps,
};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::train::{Trainer, ema, step_seed};
use nabla::nn::Module;
use nabla::nn::dnc::Dnc;
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::json;

/// See the module docs.
pub struct DncCopy;

/// The two models trained side by side.
#[derive(Module)]
struct Models {
    dnc: Dnc,
    lstm: LstmBaseline,
}

/// Length of the generalisation test.
const LONG: usize = 20;

impl Experiment for DncCopy {
    fn spec(&self) -> Spec {
        Spec {
            name: "dnc-copy",
            summary: "DNC (32 x 16 memory) and an LSTM of equal size learn to copy 6-bit sequences of length 1-10; tested at length 20 (--quick: lengths 1-3, 300 steps)",
            runtime: "~11 min; --quick ~20 s",
            options: [OptSpec::int("max-len", "longest training sequence", 10)
                .range(1, 1000)
                .quick(3)]
            .into_iter()
            .chain(model_options())
            .chain([OptSpec::int(
                "sparse-k",
                "0: dense DNC; K > 0: the sparse DNC with K entries",
                0,
            )
            .range(0, 1 << 16)])
            .chain(training_options())
            .collect(),
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let max_len = cfg.usize("max-len");
        let (slots, word, heads) = (
            cfg.usize("memory-slots"),
            cfg.usize("word-size"),
            cfg.usize("read-heads"),
        );
        let sparse = match cfg.usize("sparse-k") {
            0 => None,
            k if k < slots => Some(k),
            k => {
                return Err(ZooError::Config(
                    crate::experiment::ConfigError::OutOfRange {
                        name: "sparse-k".into(),
                        bound: format!("below --memory-slots ({slots})"),
                        got: k.to_string(),
                    },
                ));
            }
        };
        let batch = cfg.usize("batch-size");
        let steps = cfg.steps_or(if cfg.quick { 300 } else { 12_000 });
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let dnc = dnc(
            COPY_INPUTS,
            cfg.usize("hidden"),
            slots,
            word,
            heads,
            sparse,
            &mut rng,
        );
        let dnc_params = dnc.num_parameters();
        let hidden = LstmBaseline::hidden_for(dnc_params, COPY_INPUTS, BITS);
        let lstm = LstmBaseline::new(COPY_INPUTS, BITS, hidden, &mut rng);
        let lstm_params = lstm.num_parameters();
        let mut models = Models { dnc, lstm };
        let mut opt = Adam::new(cfg.f64("lr"));
        let clip = cfg.f64("clip");
        // Fixed test sets, the same for every seed: 16 sequences of each training length.
        let mut test_rng = StdRng::seed_from_u64(0xC0B1);
        let test: Vec<_> = (1..=max_len)
            .map(|l| copy_batch(16, l, &mut test_rng))
            .collect();
        let long = vec![copy_batch(32, LONG, &mut test_rng)];
        let mut trainer = Trainer::new(ctx, steps, &mut models, &mut opt)?;
        let eval_every = (steps / 10).max(1);
        while !trainer.done() {
            let step = trainer.step();
            let mut r = StdRng::seed_from_u64(step_seed(cfg.seed, step));
            let len = r.random_range(1..=max_len);
            let b = copy_batch(batch, len, &mut r);
            let loss_d = masked_bce(&models.dnc.logits(&b.x), &b);
            let loss_l = masked_bce(&models.lstm.logits(&b.x), &b);
            trainer.check_loss(loss_d.item() + loss_l.item())?;
            let mut grads = loss_d.backward();
            let mut gl = loss_l.backward();
            if clip > 0.0 {
                clip_grad_norm(&mut grads, clip);
                clip_grad_norm(&mut gl, clip);
            }
            for p in models.lstm.parameters() {
                if let Some(g) = gl.remove(&p) {
                    grads.insert(&p, g);
                }
            }
            opt.step(&mut models, &grads);
            let ld = ema(&mut trainer.scalars, "dnc_loss", loss_d.item(), 0.98);
            let ll = ema(&mut trainer.scalars, "lstm_loss", loss_l.item(), 0.98);
            if (step + 1) % 10 == 0 {
                trainer.curves.push("dnc_loss", (step + 1) as f64, ld);
                trainer.curves.push("lstm_loss", (step + 1) as f64, ll);
            }
            if (step + 1) % eval_every == 0 {
                let x = (step + 1) as f64;
                trainer
                    .curves
                    .push("dnc_ber", x, bit_error_rate(&models.dnc, &test));
                trainer
                    .curves
                    .push("lstm_ber", x, bit_error_rate(&models.lstm, &test));
            }
            trainer.end_step(
                &mut models,
                &mut opt,
                &format!("loss dnc {ld:.4} lstm {ll:.4}"),
            )?;
        }
        trainer.finish(&mut models, &mut opt)?;
        let ber = bit_error_rate(&models.dnc, &test);
        let ber_long = bit_error_rate(&models.dnc, &long);
        let lstm_ber = bit_error_rate(&models.lstm, &test);
        let lstm_ber_long = bit_error_rate(&models.lstm, &long);
        let kind = match sparse {
            None => "dense DNC".to_string(),
            Some(k) => format!("sparse DNC (K = {k})"),
        };
        let mut r = Report::default();
        for (k, v) in [
            ("bit_error_rate", json!(ber)),
            ("bit_error_rate_len20", json!(ber_long)),
            ("lstm_bit_error_rate", json!(lstm_ber)),
            ("lstm_bit_error_rate_len20", json!(lstm_ber_long)),
            ("dnc_parameters", json!(dnc_params)),
            ("lstm_parameters", json!(lstm_params)),
            ("steps", json!(steps)),
        ] {
            r.metrics.insert(k.into(), v);
        }
        r.summary = vec![
            format!(
                "{kind}: {slots} x {word} memory, {heads} read head(s), {dnc_params} parameters; LSTM baseline: {hidden} units, {lstm_params} parameters"
            ),
            format!("{steps} Adam steps of {batch} sequences of length 1-{max_len}"),
            format!("bit error rate, lengths 1-{max_len}: DNC {ber:.4}, LSTM {lstm_ber:.4}"),
            format!(
                "bit error rate, length {LONG} (never trained on): DNC {ber_long:.4}, LSTM {lstm_ber_long:.4}"
            ),
        ];
        r.curves = vec![
            trainer.curves.curve(
                "loss.png",
                "dnc-copy: training loss (bits, cross-entropy)",
                "step",
                "loss (EMA)",
                &[("dnc_loss", "DNC"), ("lstm_loss", "LSTM")],
                true,
            ),
            trainer.curves.curve(
                "bit_error_rate.png",
                "dnc-copy: bit error rate on lengths 1-max",
                "step",
                "bit error rate",
                &[("dnc_ber", "DNC"), ("lstm_ber", "LSTM")],
                false,
            ),
        ];
        r.heatmaps = weighting_heatmaps(&models.dnc, &long[0].x, "", "dnc-copy (length 20)");
        Ok(r)
    }
}
