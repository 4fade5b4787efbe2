//! Where the time of a recorded computation goes: process CPU time of the forward pass without
//! recording, the recorded forward pass, the backward pass, and freeing the graph, for scalar-chain,
//! rk4-pendulum and trebuchet-grad. A profiling aid (CPU time is robust to other processes on a shared machine):
//!
//! ```text
//! cargo run --release -p nabla-bench --example phases [repeats]
//! cargo run --release -p nabla-bench --example phases --features mimalloc
//! ```

use nabla::Tensor;
use nabla_bench as nb;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn phases(name: &str, repeats: usize, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor) {
    let vars: Vec<Tensor> = inputs.iter().map(Tensor::variable).collect();
    let mut rows = Vec::new();
    for _ in 0..repeats {
        let c0 = nb::cpu_time();
        drop(nabla::no_grad(|| f(inputs)));
        let c1 = nb::cpu_time();
        let y = f(&vars);
        let c2 = nb::cpu_time();
        let g = y.backward();
        let c3 = nb::cpu_time();
        drop(g);
        drop(y);
        let c4 = nb::cpu_time();
        rows.push([c1 - c0, c2 - c1, c3 - c2, c4 - c3]);
    }
    let labels = [
        "forward (no_grad)",
        "forward (recorded)",
        "backward",
        "drop graph",
    ];
    let med: Vec<f64> = (0..4)
        .map(|k| nb::median(&rows.iter().map(|r| r[k]).collect::<Vec<_>>()))
        .collect();
    let recorded: f64 = med[1..].iter().sum();
    println!("{name} (median CPU time over {repeats} runs):");
    for (l, m) in labels.iter().zip(&med) {
        let share = if l.contains("no_grad") {
            String::new()
        } else {
            format!(" ({:.0}%)", 100.0 * m / recorded)
        };
        println!("  {l:<20} {:>8.3} ms{share}", m * 1e3);
    }
}

fn main() {
    let repeats = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    phases("scalar-chain", repeats, &nb::scalar_chain_inputs(), |p| {
        nb::scalar_chain(&p[0], &p[1])
    });
    phases(
        "rk4-pendulum",
        repeats,
        &nb::pendulum_params(),
        nb::pendulum_loss,
    );
    phases(
        "trebuchet-grad",
        repeats,
        &nb::trebuchet_inputs(),
        nb::trebuchet_distance,
    );
}
