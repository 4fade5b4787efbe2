//! Memory of meta-training through a long inner loop: one meta-gradient (second order) of the
//! validation loss with respect to SGD-with-momentum's learning rate and momentum, through 1,000
//! unrolled full-batch steps of a 1-64-64-1 tanh network on 256 points (f32), with and without
//! gradient checkpointing (`nabla::meta::Unroll::checkpoint_every`). Each mode runs in its own
//! process, so that each peak resident memory (getrusage) is its own:
//!
//! ```text
//! cargo run --release -p nabla-bench --example meta_memory [steps] [block]
//! ```
//!
//! prints the peak resident memory of both modes, their meta-gradients (which must agree) and
//! their times; the checkpointed mode must stay under the stated bound (`BOUND_MIB`).

use nabla::meta::{DiffMomentum, DiffOptimizer, Unroll, unroll};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::process::Command;
use std::time::Instant;

/// The bound the checkpointed run must stay under (peak resident memory of the whole process).
const BOUND_MIB: f64 = 256.0;

fn run(steps: usize, block: Option<usize>) {
    let mut rng = StdRng::seed_from_u64(0);
    let n = 256;
    let x = Tensor::uniform([n, 1], -2.0, 2.0, DType::F32, &mut rng);
    let y = (&x * 2.0).sin();
    let xv = Tensor::uniform([n, 1], -2.0, 2.0, DType::F32, &mut rng);
    let yv = (&xv * 2.0).sin();
    let p0 = vec![
        Tensor::randn([1, 64], DType::F32, &mut rng),
        Tensor::zeros([64], DType::F32),
        Tensor::randn([64, 64], DType::F32, &mut rng) * 0.125,
        Tensor::zeros([64], DType::F32),
        Tensor::randn([64, 1], DType::F32, &mut rng) * 0.125,
        Tensor::zeros([1], DType::F32),
    ];
    let mse = |p: &[Tensor], x: &Tensor, y: &Tensor| {
        let h = (x.matmul(&p[0]) + &p[1]).tanh();
        let h = (h.matmul(&p[2]) + &p[3]).tanh();
        (h.matmul(&p[4]) + &p[5] - y).square().mean()
    };
    let lr = Tensor::scalar(0.05f32).variable();
    let mu = Tensor::scalar(0.9f32).variable();
    let opt = DiffMomentum::new(lr.clone(), mu.clone());
    let mut cfg = Unroll::new(steps);
    if let Some(b) = block {
        cfg = cfg.checkpoint_every(b);
    }
    let t = Instant::now();
    let out = unroll(&opt, &p0, &opt.init(&p0), &cfg, move |_, p: &[Tensor]| {
        mse(p, &x, &y)
    });
    let val = mse(&out.params, &xv, &yv);
    let g = val.backward();
    let secs = t.elapsed().as_secs_f64();
    let peak = nabla_bench::memory::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "{{\"mode\": \"{}\", \"steps\": {steps}, \"peak_rss_mib\": {peak:.1}, \"val_loss\": {}, \"grad_lr\": {}, \"grad_momentum\": {}, \"seconds\": {secs:.2}}}",
        block.map_or("no checkpointing".to_string(), |b| format!(
            "checkpoint every {b}"
        )),
        val.item(),
        g.get(&lr).map_or(0.0, |t| t.item()),
        g.get(&mu).map_or(0.0, |t| t.item()),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 1 && args[1] == "--child" {
        let steps = args[2].parse().expect("steps");
        let block: usize = args[3].parse().expect("block");
        run(steps, (block > 0).then_some(block));
        return;
    }
    let steps: usize = args
        .get(1)
        .map_or(1000, |s| s.parse().expect("steps: an integer"));
    let block: usize = args
        .get(2)
        .map_or(32, |s| s.parse().expect("block: an integer"));
    let exe = std::env::current_exe().expect("own path");
    let mut peaks = Vec::new();
    for b in [block, 0] {
        let out = Command::new(&exe)
            .args(["--child", &steps.to_string(), &b.to_string()])
            .output()
            .expect("child run");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("{line}");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        peaks.push(v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN));
    }
    println!(
        "peak resident memory through {steps} inner steps: {:.1} MiB with checkpointing (every {block} steps; bound {BOUND_MIB} MiB: {}), {:.1} MiB without",
        peaks[0],
        if peaks[0] <= BOUND_MIB {
            "within"
        } else {
            "EXCEEDED"
        },
        peaks[1]
    );
}
