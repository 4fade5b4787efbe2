//! `dnc-scaling`: how the cost of one DNC step grows with the number of memory slots N, for the
//! dense DNC (whose temporal link matrix is N x N) and the sparse DNC (top-K content lookup,
//! K-sparse weightings, at most K links per row and per column). Time of a training step (forward
//! and backward through a short sequence, batch 1) and the bytes its recorded graph holds for the
//! backward pass, at N = 16 … 4096, and the growth exponents fitted on the larger sizes. Timings
//! depend on the machine and its load; the memory figures do not.

use super::dnc_tasks::{COPY_INPUTS, copy_batch, dnc, masked_bce};
use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::train::Curves;
use nabla::nn::dnc::Dnc;
use nabla::rand::{SeedableRng, rngs::StdRng};
use serde_json::{Map, json};
use std::time::Instant;

/// See the module docs.
pub struct DncScaling;

/// CPU seconds used so far by all the threads of this process (Linux: the run times in
/// `/proc/self/task/*/schedstat`), `None` elsewhere. Unlike wall-clock time it does not count the
/// time spent waiting for a core on a loaded machine.
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// One size's figures: median wall-clock and CPU seconds per sequence step of a training step
/// (forward and backward), and the bytes of the buffers the recorded graph holds for the
/// backward pass, per sequence step.
fn measure(model: &Dnc, seq: usize, reps: usize) -> (f64, Option<f64>, f64) {
    let batch = copy_batch(1, seq, &mut StdRng::seed_from_u64(5));
    let steps = batch.x.dims()[1] as f64;
    let (mut times, mut cpu) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    let mut mem = 0.0;
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let loss = masked_bce(&model.forward_sequence(&batch.x, None).0, &batch);
        let grads = loss.backward();
        times.push(t0.elapsed().as_secs_f64() / steps);
        if let (Some(a), Some(b)) = (c0, cpu_seconds()) {
            cpu.push((b - a) / steps);
        }
        drop(grads);
        mem = loss.graph_bytes() as f64 / steps;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    (median(times).unwrap_or(f64::NAN), median(cpu), mem)
}

/// Least-squares slope of `ln y` against `ln x`.
fn growth_exponent(points: &[(f64, f64)]) -> f64 {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0 > 0.0 && p.1 > 0.0)
        .map(|p| (p.0.ln(), p.1.ln()))
        .collect();
    let n = pts.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

impl Experiment for DncScaling {
    fn spec(&self) -> Spec {
        Spec {
            name: "dnc-scaling",
            summary: "time and memory per step of the dense and the sparse DNC against memory size N = 16 ... 4096, with fitted growth exponents (--quick: N up to 128)",
            runtime: "~3 min; --quick ~5 s",
            options: vec![
                OptSpec::int(
                    "max-slots",
                    "largest memory size N (powers of 2 from 16)",
                    4096,
                )
                .range(16, 1 << 16)
                .quick(128),
                OptSpec::int("sparse-k", "entries K of the sparse DNC", 8).range(1, 1 << 12),
                OptSpec::int("word-size", "memory word size W", 16).range(1, 4096),
                OptSpec::int("hidden", "LSTM controller units", 64).range(1, 4096),
                OptSpec::int(
                    "seq-len",
                    "copy length of the timed sequence (2 len + 1 steps)",
                    2,
                )
                .range(1, 1000),
                OptSpec::int("reps", "timed repetitions per size (the median is kept)", 3)
                    .range(1, 1000)
                    .quick(2),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let max_n = cfg.usize("max-slots");
        let k = cfg.usize("sparse-k");
        let (word, hidden) = (cfg.usize("word-size"), cfg.usize("hidden"));
        let (seq, reps) = (cfg.usize("seq-len"), cfg.usize("reps"));
        let sizes: Vec<usize> = (4..=16)
            .map(|p| 1usize << p)
            .filter(|&n| n <= max_n)
            .collect();
        let mut curves = Curves::default();
        let (mut dense_t, mut sparse_t) = (Map::new(), Map::new());
        let (mut dense_m, mut sparse_m) = (Map::new(), Map::new());
        let (mut dense_c, mut sparse_c) = (Map::new(), Map::new());
        let total = 2 * sizes.len() as u64;
        let mut done = 0;
        for &n in &sizes {
            for sparse in [false, true] {
                let mut rng = StdRng::seed_from_u64(cfg.seed);
                let kk = sparse.then_some(k.min(n - 1));
                let model = dnc(COPY_INPUTS, hidden, n, word, 1, kk, &mut rng);
                let (t, c, m) = measure(&model, seq, reps);
                let name = if sparse { "sparse" } else { "dense" };
                let x = n as f64;
                curves.push(&format!("{name}_time"), x.log2(), t * 1e3);
                curves.push(&format!("{name}_mem"), x.log2(), m / 1048576.0);
                if let Some(c) = c {
                    curves.push(&format!("{name}_cpu"), x.log2(), c * 1e3);
                    let cm = if sparse { &mut sparse_c } else { &mut dense_c };
                    cm.insert(n.to_string(), json!(c));
                }
                let (tm, mm) = if sparse {
                    (&mut sparse_t, &mut sparse_m)
                } else {
                    (&mut dense_t, &mut dense_m)
                };
                tm.insert(n.to_string(), json!(t));
                mm.insert(n.to_string(), json!(m));
                done += 1;
                ctx.progress(
                    done,
                    total,
                    &format!("N = {n} {name}: {:.2} ms/step", t * 1e3),
                );
            }
        }
        let fit = |name: &str| {
            let pts: Vec<(f64, f64)> = curves
                .get(name)
                .iter()
                .map(|p| (p.0.exp2(), p.1))
                .filter(|p| p.0 >= 256.0 || max_n < 256)
                .collect();
            growth_exponent(&pts)
        };
        let (de, se) = (fit("dense_time"), fit("sparse_time"));
        let (dme, sme) = (fit("dense_mem"), fit("sparse_mem"));
        let (dce, sce) = (fit("dense_cpu"), fit("sparse_cpu"));
        let mut r = Report::default();
        r.metrics
            .insert("dense_seconds_per_step".into(), json!(dense_t));
        r.metrics
            .insert("sparse_seconds_per_step".into(), json!(sparse_t));
        r.metrics
            .insert("dense_bytes_per_step".into(), json!(dense_m));
        r.metrics
            .insert("sparse_bytes_per_step".into(), json!(sparse_m));
        r.metrics
            .insert("dense_cpu_seconds_per_step".into(), json!(dense_c));
        r.metrics
            .insert("sparse_cpu_seconds_per_step".into(), json!(sparse_c));
        r.metrics.insert("dense_cpu_exponent".into(), json!(dce));
        r.metrics.insert("sparse_cpu_exponent".into(), json!(sce));
        r.metrics.insert("dense_time_exponent".into(), json!(de));
        r.metrics.insert("sparse_time_exponent".into(), json!(se));
        r.metrics.insert("dense_memory_exponent".into(), json!(dme));
        r.metrics
            .insert("sparse_memory_exponent".into(), json!(sme));
        r.metrics.insert("sparse_k".into(), json!(k));
        let fit_range = if max_n >= 256 { "N >= 256" } else { "all N" };
        let row = |n: usize| {
            let key = n.to_string();
            let get = |m: &Map<String, serde_json::Value>| m[&key].as_f64().unwrap_or(f64::NAN);
            format!(
                "N = {n:>5}: dense {:>9.3} ms {:>9.3} MiB, sparse {:>8.3} ms {:>7.3} MiB per step",
                get(&dense_t) * 1e3,
                get(&dense_m) / 1048576.0,
                get(&sparse_t) * 1e3,
                get(&sparse_m) / 1048576.0
            )
        };
        r.summary = vec![format!(
            "training step (forward + backward), batch 1, W = {word}, 1 read head, controller {hidden}, sparse K = {k}"
        )];
        r.summary.extend(sizes.iter().map(|&n| row(n)));
        r.summary.push(format!(
            "time grows as N^{de:.2} (dense) and N^{se:.2} (sparse); CPU time as N^{dce:.2} and N^{sce:.2}; memory as N^{dme:.2} and N^{sme:.2} (fits over {fit_range})"
        ));
        r.curves = vec![
            curves.curve(
                "time.png",
                "dnc-scaling: time per step",
                "log2 N (memory slots)",
                "milliseconds per step",
                &[
                    ("dense_time", "dense DNC (wall clock)"),
                    ("sparse_time", "sparse DNC (wall clock)"),
                    ("dense_cpu", "dense DNC (CPU time)"),
                    ("sparse_cpu", "sparse DNC (CPU time)"),
                ],
                true,
            ),
            curves.curve(
                "memory.png",
                "dnc-scaling: memory held by the graph for backward, per step",
                "log2 N (memory slots)",
                "MiB per step",
                &[("dense_mem", "dense DNC"), ("sparse_mem", "sparse DNC")],
                true,
            ),
        ];
        Ok(r)
    }
}
