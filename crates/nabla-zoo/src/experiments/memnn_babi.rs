//! `memnn-babi`: the end-to-end memory network ([`nabla::nn::MemN2N`], Sukhbaatar et al. 2015)
//! on the 20 bAbI question-answering tasks, 1k training questions each, one model per task, in
//! the paper's PE LS RN setting: 3 hops, adjacent weight tying, position and temporal encoding,
//! linear start, random noise (time jitter), as in the paper and its released code: SGD on the
//! batch's summed loss, batches of 32, each parameter matrix's gradient clipped to norm 40 (the
//! code clips per matrix; one global norm of 40 over all eight matrices held most steps back and
//! left tasks 4 and 6 unlearnt). Linear start: at most `epochs / 5` epochs at rate 0.005 without
//! the attention softmax (until the validation loss stops falling: no new minimum for 5 epochs),
//! then the softmax is reinserted and the main schedule of `epochs` epochs runs at 0.01, halved
//! every 25 epochs. 10% of the training stories are held
//! out for validation: they end linear start and pick the epoch (of the main schedule) and the
//! repeat whose parameters are tested.
//!
//! The published errors beside ours are the paper's Table 1, column "PE LS RN" (1k training
//! questions, independent training per task, best of 10 runs), percent.

use crate::babi::{self, Question};
use crate::experiment::{ConfigError, Context, Experiment, OptSpec, Report, Spec, State, ZooError};
use crate::train::{Curves, step_seed};
use nabla::nn::{MemN2N, MemN2NConfig, MemoryBatch, cross_entropy};
use nabla::optim::{Optimizer, Sgd, clip_grad_norm};
use nabla::rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use nabla::{Indices, Tensor, no_grad};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// See the module docs.
pub struct MemnnBabi;

/// A finished task: test, validation and training error, epochs of linear start, validation-error
/// curve.
type TaskRow = (f64, f64, f64, usize, Vec<(f64, f64)>);

/// Test error (%) of MemN2N PE LS RN with 1k training questions, Table 1 of Sukhbaatar et al.
/// (2015), tasks 1 to 20; its mean is 13.9 and 11 tasks fail (error above 5%).
pub const PUBLISHED_PE_LS_RN_1K: [f64; 20] = [
    0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1, 0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0,
    11.1, 82.8, 0.0,
];

const TASK_NAMES: [&str; 20] = [
    "single supporting fact",
    "two supporting facts",
    "three supporting facts",
    "two argument relations",
    "three argument relations",
    "yes/no questions",
    "counting",
    "lists/sets",
    "simple negation",
    "indefinite knowledge",
    "basic coreference",
    "conjunction",
    "compound coreference",
    "time reasoning",
    "basic deduction",
    "basic induction",
    "positional reasoning",
    "size reasoning",
    "path finding",
    "agent's motivations",
];

/// Parses `1,3,5-7` into task numbers in 1..=20.
fn parse_tasks(s: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::Invalid {
        name: "tasks".into(),
        expected: "task numbers from 1 to 20, e.g. `1-20` or `1,2,5-7`",
        got: s.into(),
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a == 0 || b > 20 || a > b {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Questions as token ids.
struct Encoded {
    stories: Vec<Vec<Vec<usize>>>,
    queries: Vec<Vec<usize>>,
    answers: Vec<usize>,
}

impl Encoded {
    fn new(qs: &[Question], vocab: &BTreeMap<String, usize>) -> Encoded {
        let ids = |ws: &[String]| ws.iter().map(|w| vocab[w]).collect::<Vec<_>>();
        Encoded {
            stories: qs
                .iter()
                .map(|q| q.story.iter().map(|s| ids(s)).collect())
                .collect(),
            queries: qs.iter().map(|q| ids(&q.query)).collect(),
            answers: qs.iter().map(|q| vocab[&q.answer]).collect(),
        }
    }

    fn len(&self) -> usize {
        self.answers.len()
    }

    fn batch(
        &self,
        idx: &[usize],
        m: usize,
        j: usize,
        noise: Option<(f64, &mut StdRng)>,
    ) -> (MemoryBatch, Indices) {
        let s: Vec<&[Vec<usize>]> = idx.iter().map(|&i| self.stories[i].as_slice()).collect();
        let q: Vec<&[usize]> = idx.iter().map(|&i| self.queries[i].as_slice()).collect();
        let a = idx.iter().map(|&i| self.answers[i]).collect::<Vec<_>>();
        (
            MemoryBatch::new(&s, &q, m, j, noise),
            Indices::from_slice(&a),
        )
    }
}

/// One task's data: train, validation and test questions with a shared vocabulary.
struct TaskData {
    vocab: usize,
    sentence_len: usize,
    longest_story: usize,
    train: Encoded,
    val: Encoded,
    test: Encoded,
}

fn load_task(dir: &std::path::Path, task: usize, seed: u64) -> Result<TaskData, ZooError> {
    let data = |e: babi::BabiError| ZooError::Data(e.to_string());
    let (train_path, test_path) = babi::task_files(dir, task).map_err(data)?;
    let mut train_stories = babi::read(&train_path).map_err(data)?;
    let test_stories = babi::read(&test_path).map_err(data)?;
    // 10% of the training stories (at least one when there are two or more) for validation
    train_stories.shuffle(&mut StdRng::seed_from_u64(step_seed(
        seed,
        1000 + task as u64,
    )));
    let n_val = if train_stories.len() >= 2 {
        (train_stories.len() / 10).max(1)
    } else {
        0
    };
    let val_stories = train_stories.split_off(train_stories.len() - n_val);
    let flat = |s: Vec<babi::Story>| s.into_iter().flatten().collect::<Vec<Question>>();
    let (train, val, test) = (flat(train_stories), flat(val_stories), flat(test_stories));
    let mut vocab: BTreeMap<String, usize> = BTreeMap::new();
    let (mut j, mut longest) = (1, 1);
    for q in train.iter().chain(&val).chain(&test) {
        for w in q.story.iter().flatten().chain(&q.query).chain([&q.answer]) {
            vocab.entry(w.clone()).or_insert(0);
        }
        j = q
            .story
            .iter()
            .map(Vec::len)
            .chain([q.query.len(), j])
            .max()
            .unwrap_or(1);
        longest = longest.max(q.story.len());
    }
    for (i, v) in vocab.values_mut().enumerate() {
        *v = i + 1; // 0 is the nil word
    }
    Ok(TaskData {
        vocab: vocab.len() + 1,
        sentence_len: j,
        longest_story: longest,
        train: Encoded::new(&train, &vocab),
        val: Encoded::new(&val, &vocab),
        test: Encoded::new(&test, &vocab),
    })
}

/// Mean loss and error rate of `net` on `data`.
fn evaluate(net: &MemN2N, data: &Encoded, m: usize, j: usize) -> (f64, f64) {
    if data.len() == 0 {
        return (f64::NAN, f64::NAN);
    }
    no_grad(|| {
        let (mut loss, mut wrong) = (0.0, 0usize);
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(256) {
            let (b, a) = data.batch(chunk, m, j, None);
            let logits = net.forward(&b);
            loss += cross_entropy(&logits, &a).item() * chunk.len() as f64;
            let pred = logits.argmax(-1, false);
            wrong += pred.iter().zip(a.iter()).filter(|(p, t)| p != t).count();
        }
        (loss / data.len() as f64, wrong as f64 / data.len() as f64)
    })
}

struct Settings {
    epochs: usize,
    repeats: usize,
    batch: usize,
    memory: usize,
    dim: usize,
    hops: usize,
    lr: f64,
    noise: f64,
    linear_start: bool,
    clip_matrix: bool,
    attend_empty: bool,
}

/// Errors of the best repeat and its validation-error curve.
struct TaskResult {
    test_error: f64,
    val_error: f64,
    train_error: f64,
    /// Epochs of linear start (without softmax) before the main schedule.
    ls_epochs: usize,
    curve: Vec<(f64, f64)>,
}

/// Linear start ends once this many epochs pass without a new minimum of the validation loss.
const LS_PATIENCE: usize = 5;

/// Epochs of the linear-start phase at most: a fifth of the main schedule (the paper's code: 20
/// before 100), none without linear start.
fn linear_start_epochs(s: &Settings) -> usize {
    if s.linear_start {
        (s.epochs / 5).max(1)
    } else {
        0
    }
}

fn train_task(
    task: usize,
    d: &TaskData,
    s: &Settings,
    seed: u64,
    tick: &mut dyn FnMut(&str) -> Result<(), ZooError>,
) -> Result<TaskResult, ZooError> {
    let m = s.memory.min(d.longest_story).max(1);
    let j = d.sentence_len;
    let ls_max = linear_start_epochs(s);
    let mut best: Option<TaskResult> = None;
    for rep in 0..s.repeats {
        let mut rng = StdRng::seed_from_u64(step_seed(seed, (task * 1000 + rep) as u64));
        let cfg = MemN2NConfig {
            embed_dim: s.dim,
            hops: s.hops,
            memory_size: m,
            attend_empty: s.attend_empty,
            ..MemN2NConfig::babi(d.vocab, j)
        };
        let mut net = MemN2N::new(cfg, &mut rng);
        net.linear_start = s.linear_start;
        let mut opt = Sgd::new(s.lr);
        let mut order: Vec<usize> = (0..d.train.len()).collect();
        let (mut best_val_loss, mut best_err) = (f64::INFINITY, f64::INFINITY);
        let mut kept = net
            .embeddings
            .iter()
            .chain(&net.temporal)
            .map(Tensor::detach)
            .collect::<Vec<_>>();
        let mut curve = Vec::new();
        let (mut ls_epochs, mut ls_best) = (0, 0);
        // linear start (at most `ls_max` epochs, constant rate), then the main schedule of
        // `epochs` epochs with the softmax, its rate halved every 25 epochs
        let mut main_epoch = 0;
        for epoch in 0..ls_max + s.epochs {
            if !net.linear_start && main_epoch == s.epochs {
                break;
            }
            let lr = if net.linear_start {
                s.lr / 2.0
            } else {
                s.lr * 0.5f64.powi((main_epoch / 25) as i32)
            };
            opt.set_learning_rate(lr);
            order.shuffle(&mut rng);
            for chunk in order.chunks(s.batch) {
                let (b, a) = d.train.batch(chunk, m, j, Some((s.noise, &mut rng)));
                // summed over the batch, as in the paper's code (the learning rate is per example)
                let loss = cross_entropy(&net.forward(&b), &a) * chunk.len() as f64;
                if !loss.item().is_finite() {
                    return Err(ZooError::Diverged {
                        step: epoch as u64 + 1,
                        loss: loss.item(),
                    });
                }
                let mut grads = loss.backward();
                if s.clip_matrix {
                    for p in net.embeddings.iter().chain(&net.temporal) {
                        if let Some(g) = grads.remove(p) {
                            let n = g.square().sum().item().sqrt();
                            let g = if n > 40.0 { g * (40.0 / n) } else { g };
                            grads.insert(p, g);
                        }
                    }
                } else {
                    clip_grad_norm(&mut grads, 40.0);
                }
                opt.step(&mut net, &grads);
            }
            let (val_loss, val_err) = evaluate(&net, &d.val, m, j);
            curve.push(((epoch + 1) as f64, val_err));
            if net.linear_start {
                ls_epochs += 1;
                // linear start ends when the validation loss stops falling (no new minimum for
                // LS_PATIENCE epochs: one epoch's rise on ~100 held-out questions is noise), then
                // the softmax is reinserted and training recommences
                if val_loss < best_val_loss {
                    best_val_loss = val_loss;
                    ls_best = ls_epochs;
                }
                if ls_epochs - ls_best >= LS_PATIENCE || val_loss.is_nan() || ls_epochs >= ls_max {
                    net.linear_start = false;
                }
            } else {
                main_epoch += 1;
                if val_err <= best_err || val_err.is_nan() {
                    best_err = val_err;
                    kept = net
                        .embeddings
                        .iter()
                        .chain(&net.temporal)
                        .map(Tensor::detach)
                        .collect();
                }
            }
            tick(&format!(
                "task {task}: epoch {} val error {:.1}%",
                epoch + 1,
                100.0 * val_err
            ))?;
        }
        let n = net.embeddings.len();
        let mut final_net =
            MemN2N::from_parameters(net.config().clone(), kept[..n].to_vec(), kept[n..].to_vec());
        final_net.linear_start = false;
        let (_, val_error) = evaluate(&final_net, &d.val, m, j);
        let (_, test_error) = evaluate(&final_net, &d.test, m, j);
        let (_, train_error) = evaluate(&final_net, &d.train, m, j);
        let r = TaskResult {
            test_error,
            val_error,
            train_error,
            ls_epochs,
            curve,
        };
        if best
            .as_ref()
            .is_none_or(|b| r.val_error < b.val_error || b.val_error.is_nan())
        {
            best = Some(r);
        }
    }
    Ok(best.expect("at least one repeat"))
}

impl Experiment for MemnnBabi {
    fn spec(&self) -> Spec {
        Spec {
            name: "memnn-babi",
            summary: "End-to-end memory network (3 hops, PE LS RN) on the 20 bAbI tasks, 1k questions each; test error per task beside the published MemN2N (--quick: task 1, 15 epochs)",
            runtime: "~15 min; --quick ~10 s",
            options: vec![
                OptSpec::string(
                    "tasks",
                    "bAbI tasks to run, e.g. `1-20` or `1,2,5-7`",
                    "1-20",
                )
                .quick("1"),
                OptSpec::int("epochs", "epochs per task", 100)
                    .range(1, 100_000)
                    .quick(15),
                OptSpec::int(
                    "repeats",
                    "training runs per task (the best on validation is tested; the paper: 10)",
                    1,
                )
                .range(1, 1000),
                OptSpec::int("batch-size", "questions per step", 32).range(1, 1 << 20),
                OptSpec::int("memory", "memory slots (most recent sentences kept)", 50)
                    .range(1, 100_000),
                OptSpec::int("dim", "embedding dimension", 20).range(1, 100_000),
                OptSpec::int("hops", "memory hops", 3).range(1, 100),
                OptSpec::float(
                    "lr",
                    "SGD learning rate (halved during linear start, as in the paper)",
                    0.01,
                )
                    .greater_than(0.0),
                OptSpec::float(
                    "noise",
                    "random noise: training stories' temporal indices jittered as if up to this fraction of empty memories were interleaved",
                    0.1,
                )
                .min(0.0)
                .less_than(1.0),
                OptSpec::int(
                    "linear-start",
                    "1: linear start (no softmax until the validation loss stops falling, at most epochs/5 epochs, then the full schedule), 0: off",
                    1,
                )
                .range(0, 1),
                OptSpec::int(
                    "clip-per-matrix",
                    "1: clip each parameter matrix's gradient to norm 40 (the paper's code), 0: clip the global norm",
                    1,
                )
                .range(0, 1),
                OptSpec::int(
                    "attend-empty",
                    "1: empty memory slots stay in the attention softmax as zero vectors (the paper's code), 0: masked out",
                    0,
                )
                .range(0, 1),
                OptSpec::path(
                    "data",
                    "folder of bAbI files qaN_*_train.txt / qaN_*_test.txt [default: data/babi/en]",
                ),
            ],
        }
    }

    fn run(
        &self,
        cfg: &crate::experiment::Config,
        ctx: &mut dyn Context,
    ) -> Result<Report, ZooError> {
        let tasks = parse_tasks(cfg.str("tasks"))?;
        let dir: PathBuf = cfg
            .path("data")
            .unwrap_or_else(|| nabla::data::datasets::bundled_data_dir().join("babi/en"));
        let s = Settings {
            epochs: cfg.usize("epochs"),
            repeats: cfg.usize("repeats"),
            batch: cfg.usize("batch-size"),
            memory: cfg.usize("memory"),
            dim: cfg.usize("dim"),
            hops: cfg.usize("hops"),
            lr: cfg.f64("lr"),
            noise: cfg.f64("noise"),
            linear_start: cfg.usize("linear-start") == 1,
            clip_matrix: cfg.usize("clip-per-matrix") == 1,
            attend_empty: cfg.usize("attend-empty") == 1,
        };
        // read every task first, so that a bad file stops the run before any training
        let data = tasks
            .iter()
            .map(|&t| load_task(&dir, t, cfg.seed))
            .collect::<Result<Vec<_>, _>>()?;
        // resume at task granularity: finished tasks are kept in the checkpoint's metadata
        let (mut dummy_model, mut dummy_opt) = (Vec::<Tensor>::new(), Sgd::new(s.lr));
        let mut done: BTreeMap<String, String> = BTreeMap::new();
        if let Some((_, extra)) = ctx.resume(&mut State {
            model: &mut dummy_model,
            optimizer: &mut dummy_opt,
            extra: BTreeMap::new(),
        })? {
            done = extra;
        }
        let per_task = ((s.epochs + linear_start_epochs(&s)) * s.repeats) as u64;
        let total = per_task * tasks.len() as u64;
        let mut results: BTreeMap<usize, TaskRow> = BTreeMap::new();
        for (k, (&task, d)) in tasks.iter().zip(&data).enumerate() {
            if let Some(v) = done.get(&format!("task.{task}")) {
                let r = serde_json::from_str(v)
                    .map_err(|e| ZooError::Checkpoint(format!("checkpoint task.{task}: {e}")))?;
                results.insert(task, r);
                continue;
            }
            let mut step = per_task * k as u64;
            let mut tick = |status: &str| {
                step += 1;
                ctx.progress(step, total, status);
                if ctx.interrupted() {
                    return Err(ZooError::Interrupted {
                        step: (per_task * k as u64),
                    });
                }
                Ok(())
            };
            let r = train_task(task, d, &s, cfg.seed, &mut tick)?;
            let row = (
                r.test_error,
                r.val_error,
                r.train_error,
                r.ls_epochs,
                r.curve,
            );
            done.insert(
                format!("task.{task}"),
                serde_json::to_string(&row).expect("serialisable"),
            );
            results.insert(task, row);
            ctx.save(
                per_task * (k as u64 + 1),
                &State {
                    model: &mut dummy_model,
                    optimizer: &mut dummy_opt,
                    extra: done.clone(),
                },
            )?;
        }
        report(&tasks, &results, &data, &s)
    }
}

fn report(
    tasks: &[usize],
    results: &BTreeMap<usize, TaskRow>,
    data: &[TaskData],
    s: &Settings,
) -> Result<Report, ZooError> {
    let mut r = Report::default();
    let mut curves = Curves::default();
    let mut lines = vec![format!(
        "{:>4}  {:<26} {:>9} {:>9} {:>9}  {:>12}  {:>9}",
        "task", "", "train %", "valid %", "test %", "paper test %", "LS epochs"
    )];
    let (mut sum, mut failed) = (0.0, 0usize);
    for (&t, d) in tasks.iter().zip(data) {
        let (test, val, train, ls_epochs, curve) = &results[&t];
        let published = PUBLISHED_PE_LS_RN_1K[t - 1];
        lines.push(format!(
            "{t:>4}  {:<26} {:>9.1} {:>9.1} {:>9.1}  {:>12.1}  {ls_epochs:>9}",
            TASK_NAMES[t - 1],
            100.0 * train,
            100.0 * val,
            100.0 * test,
            published
        ));
        r.metrics.insert(format!("task{t}_error"), json!(test));
        r.metrics
            .insert(format!("task{t}_ls_epochs"), json!(ls_epochs));
        sum += test;
        if *test > 0.05 {
            failed += 1;
        }
        curves.push("nabla", t as f64, 100.0 * test);
        curves.push("paper", t as f64, published);
        for &(e, v) in curve {
            curves.push(&format!("val{t}"), e, 100.0 * v);
        }
        let _ = d;
    }
    let mean = sum / tasks.len() as f64;
    r.metrics.insert("mean_error".into(), json!(mean));
    r.metrics.insert("failed_tasks".into(), json!(failed));
    if tasks.len() == 20 {
        r.metrics.insert("mean_error_20".into(), json!(mean));
    }
    if let Some((test, ..)) = results.get(&1) {
        r.metrics.insert("task1_accuracy".into(), json!(1.0 - test));
    }
    let pub_mean = tasks
        .iter()
        .map(|&t| PUBLISHED_PE_LS_RN_1K[t - 1])
        .sum::<f64>()
        / tasks.len() as f64;
    let pub_failed = tasks
        .iter()
        .filter(|&&t| PUBLISHED_PE_LS_RN_1K[t - 1] > 5.0)
        .count();
    r.summary = vec![format!(
        "MemN2N, {} hops, d = {}, PE{}{}, {} epochs (after linear start) x {} repeat(s) per task, 10% of training stories for validation",
        s.hops,
        s.dim,
        if s.linear_start { " LS" } else { "" },
        if s.noise > 0.0 { " RN" } else { "" },
        s.epochs,
        s.repeats
    )];
    r.summary.extend(lines);
    r.summary.push(format!(
        "mean test error {:.1}% over {} task(s), {failed} failed (> 5%); paper on these tasks: {pub_mean:.1}%, {pub_failed} failed",
        100.0 * mean,
        tasks.len()
    ));
    r.summary.push(
        "paper: Sukhbaatar et al. 2015, Table 1, MemN2N PE LS RN, 1k (best of 10 runs per task)"
            .into(),
    );
    let names: Vec<(String, String)> = tasks
        .iter()
        .map(|t| (format!("val{t}"), format!("task {t}")))
        .collect();
    let refs: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    r.curves = vec![
        curves.curve(
            "test_error.png",
            "memnn-babi: test error per task",
            "bAbI task",
            "test error (%)",
            &[
                ("nabla", "nabla MemN2N"),
                ("paper", "published MemN2N PE LS RN 1k"),
            ],
            false,
        ),
        curves.curve(
            "validation.png",
            "memnn-babi: validation error",
            "epoch",
            "validation error (%)",
            &refs,
            false,
        ),
    ];
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lists_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_tasks("1-3,5, 2").unwrap(), vec![1, 2, 3, 5]);
        assert_eq!(parse_tasks("1-20").unwrap().len(), 20);
        for bad in ["0", "21", "3-1", "x", "", "1,,2"] {
            assert!(parse_tasks(bad).is_err(), "{bad}");
        }
    }
}
