//! Peak memory and time of a differentiated 10,000-step solve: every step recorded
//! (`Gradient::Record`) against checkpointed segments (`Gradient::Checkpoint`, about sqrt(10,000)
//! = 100 segments), with a forward-only solve for reference.
//!
//! Each mode runs in its own child process (this program started again with the mode as its
//! argument), which reports its peak resident memory (`VmHWM` in `/proc/self/status`, Linux) and
//! its time. The problem: a batch of 32 pendulums (a state of 64 numbers) whose 32 lengths are the
//! parameters, RK4 with 10,000 steps; the gradient of the sum of the final states with respect to
//! the lengths is computed in both gradient modes and must agree.
//!
//! Run it with `cargo run --release --example ode_memory` (or `... -- 40000` for another step
//! count).

use nabla::ode::{Gradient, Method, Options, solve};
use nabla::{Tensor, no_grad, value_and_grad};
use std::process::Command;
use std::time::Instant;

const BATCH: usize = 32;

fn final_state_sum(lengths: &Tensor, gradient: Gradient, steps: usize) -> Tensor {
    let g_over_l = lengths.rdiv_scalar(9.81).reshape([BATCH, 1]);
    let f = move |_t: &Tensor, y: &Tensor| {
        let (th, om) = (y.narrow(1, 0, 1), y.narrow(1, 1, 1));
        Tensor::concat(&[om.clone(), -(&g_over_l * &th.sin()) - &om * 0.1], 1)
    };
    let y0 = Tensor::from_vec(
        (0..BATCH)
            .flat_map(|i| [0.2 + 0.02 * i as f64, 0.0])
            .collect(),
        [BATCH, 2],
    );
    let opts = Options::default()
        .method(Method::Rk4)
        .dt(10.0 / steps as f64)
        .gradient(gradient);
    let sol = solve(f, &Tensor::scalar(0.0f64), 10.0, &y0, &opts).expect("solve");
    assert_eq!(sol.stats.steps, steps);
    sol.y.sum()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs one mode and prints `peak_kib seconds gradient_checksum`.
fn child(mode: &str, steps: usize) {
    let lengths = Tensor::from_vec((0..BATCH).map(|i| 1.0 + 0.05 * i as f64).collect(), [BATCH]);
    let start = Instant::now();
    let checksum = match mode {
        "forward" => no_grad(|| final_state_sum(&lengths, Gradient::Record, steps)).item(),
        "record" | "checkpoint" => {
            let gradient = if mode == "record" {
                Gradient::Record
            } else {
                Gradient::checkpoint()
            };
            let (_, g) = value_and_grad(
                |p: &[Tensor]| final_state_sum(&p[0], gradient, steps),
                &[lengths],
            );
            g[0].to_vec::<f64>()
                .iter()
                .enumerate()
                .map(|(i, v)| v * (i + 1) as f64)
                .sum()
        }
        other => panic!("unknown mode {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{} {secs} {checksum:.12e}", peak_rss_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, steps] = &args[..] {
        return child(mode, steps.parse().expect("a step count"));
    }
    let steps: usize = args
        .first()
        .map_or(10_000, |s| s.parse().expect("a step count"));
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{steps} RK4 steps, state of {} numbers, {BATCH} parameters",
        2 * BATCH
    );
    println!("| mode | peak RSS (MiB) | time (s) | gradient checksum |");
    println!("|---|---|---|---|");
    for mode in ["forward", "record", "checkpoint"] {
        let out = Command::new(&exe)
            .args([mode, &steps.to_string()])
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        let mib = f[0].parse::<f64>().unwrap_or(0.0) / 1024.0;
        let label = match mode {
            "forward" => "forward only (no gradient)".to_string(),
            "record" => "Gradient::Record".to_string(),
            _ => format!(
                "Gradient::Checkpoint (auto: {} segments)",
                (steps as f64).sqrt().ceil()
            ),
        };
        println!(
            "| {label} | {mib:.1} | {:.2} | {} |",
            f[1].parse::<f64>().unwrap_or(0.0),
            f[2]
        );
    }
}
