//! `dnc-recall`: associative recall (Graves et al. 2014). A sequence of 2-6 items, each three
//! 6-bit vectors after a delimiter, then a query item between two steps of a second delimiter;
//! the DNC must answer the item that followed the query. It has to store items in memory and find
//! the next one: content lookup of the query, then a step along the temporal links.

use super::dnc_tasks::{
    RECALL_INPUTS, SeqModel, bit_error_rate, dnc, masked_bce, model_options, recall_batch,
    training_options, weighting_heatmaps,
};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::train::{Trainer, ema, step_seed};
use nabla::nn::Module;
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::json;

/// See the module docs.
pub struct DncRecall;

impl Experiment for DncRecall {
    fn spec(&self) -> Spec {
        Spec {
            name: "dnc-recall",
            summary: "DNC learns associative recall: 2-6 items of three 6-bit vectors, then a query; answer the next item (--quick: 2-3 items, 300 steps)",
            runtime: "~10 min; --quick ~20 s",
            options: [
                OptSpec::int("max-items", "most items per sequence (at least 2)", 6)
                    .range(2, 1000)
                    .quick(3),
            ]
            .into_iter()
            .chain(model_options())
            .chain(training_options())
            .collect(),
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let max_items = cfg.usize("max-items");
        let (slots, word, heads) = (
            cfg.usize("memory-slots"),
            cfg.usize("word-size"),
            cfg.usize("read-heads"),
        );
        let batch = cfg.usize("batch-size");
        let steps = cfg.steps_or(if cfg.quick { 300 } else { 12_000 });
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut model = dnc(
            RECALL_INPUTS,
            cfg.usize("hidden"),
            slots,
            word,
            heads,
            None,
            &mut rng,
        );
        let params = model.num_parameters();
        let mut opt = Adam::new(cfg.f64("lr"));
        let clip = cfg.f64("clip");
        let mut test_rng = StdRng::seed_from_u64(0x2EC4);
        let test: Vec<_> = (2..=max_items)
            .map(|n| recall_batch(32, n, &mut test_rng))
            .collect();
        let mut trainer = Trainer::new(ctx, steps, &mut model, &mut opt)?;
        let eval_every = (steps / 10).max(1);
        while !trainer.done() {
            let step = trainer.step();
            let mut r = StdRng::seed_from_u64(step_seed(cfg.seed, step));
            let items = r.random_range(2..=max_items);
            let b = recall_batch(batch, items, &mut r);
            let loss = masked_bce(&model.logits(&b.x), &b);
            trainer.check_loss(loss.item())?;
            let mut grads = loss.backward();
            if clip > 0.0 {
                clip_grad_norm(&mut grads, clip);
            }
            opt.step(&mut model, &grads);
            let l = ema(&mut trainer.scalars, "loss", loss.item(), 0.98);
            if (step + 1) % 10 == 0 {
                trainer.curves.push("loss", (step + 1) as f64, l);
            }
            if (step + 1) % eval_every == 0 {
                let ber = bit_error_rate(&model, &test);
                trainer.curves.push("ber", (step + 1) as f64, ber);
            }
            trainer.end_step(&mut model, &mut opt, &format!("loss {l:.4}"))?;
        }
        trainer.finish(&mut model, &mut opt)?;
        let ber = bit_error_rate(&model, &test);
        let per_items: Vec<f64> = test
            .iter()
            .map(|b| bit_error_rate(&model, std::slice::from_ref(b)))
            .collect();
        let mut r = Report::default();
        r.metrics.insert("bit_error_rate".into(), json!(ber));
        r.metrics.insert("steps".into(), json!(steps));
        r.metrics.insert("parameters".into(), json!(params));
        r.summary = vec![
            format!(
                "DNC: {slots} x {word} memory, {heads} read head(s), {params} parameters; {steps} Adam steps of {batch} sequences of 2-{max_items} items"
            ),
            format!(
                "bit error rate {ber:.4} (chance 0.5); by number of items: {}",
                per_items
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("{}: {e:.3}", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        r.curves = vec![
            trainer.curves.curve(
                "loss.png",
                "dnc-recall: training loss (bits, cross-entropy)",
                "step",
                "loss (EMA)",
                &[("loss", "DNC")],
                true,
            ),
            trainer.curves.curve(
                "bit_error_rate.png",
                "dnc-recall: test bit error rate",
                "step",
                "bit error rate",
                &[("ber", "DNC, 2-max items")],
                false,
            ),
        ];
        let last = test.last().expect("at least one test batch");
        r.heatmaps = weighting_heatmaps(&model, &last.x, "", "dnc-recall");
        Ok(r)
    }
}
