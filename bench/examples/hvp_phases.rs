//! Where the time of an eager Hessian-vector product of rk4-pendulum goes, against a gradient: the
//! process CPU time of the recorded forward pass, the backward pass and freeing what they built,
//! for a gradient (`value_and_grad`), forward over reverse (`jvp` of `value_and_grad`) and reverse
//! over reverse. A profiling aid (CPU time is robust to other processes on a shared machine):
//!
//! ```text
//! cargo run --release -p nabla-bench --example hvp_phases [repeats]
//! ```

use nabla::{HvpMode, Tensor};
use nabla_bench as nb;
use std::cell::Cell;

fn main() {
    let repeats = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let with_rr = std::env::args().nth(2).as_deref() != Some("fwd");
    let params = nb::pendulum_params();
    let v: Vec<Tensor> = params.iter().map(Tensor::ones_like).collect();
    let mut rows = Vec::new();
    for _ in 0..repeats {
        // gradient: forward, backward, drop
        let c = Cell::new(0.0);
        let c0 = nb::cpu_time();
        let out = nabla::value_and_grad(
            |p: &[Tensor]| {
                let y = nb::pendulum_loss(p);
                c.set(nb::cpu_time());
                y
            },
            &params,
        );
        let c2 = nb::cpu_time();
        drop(out);
        let c3 = nb::cpu_time();
        let grad = [c.get() - c0, c2 - c.get(), c3 - c2];
        // forward over reverse: forward with tangents, backward with tangents, drop
        let (c1, c2) = (Cell::new(0.0), Cell::new(0.0));
        let c0 = nb::cpu_time();
        let out = nabla::jvp(
            |ys: &[Tensor]| {
                let g = nabla::value_and_grad(
                    |p: &[Tensor]| {
                        let y = nb::pendulum_loss(p);
                        c1.set(nb::cpu_time());
                        y
                    },
                    ys,
                )
                .1;
                c2.set(nb::cpu_time());
                g
            },
            &params,
            &v,
        );
        let c3 = nb::cpu_time();
        drop(out);
        let c4 = nb::cpu_time();
        let fr = [c1.get() - c0, c2.get() - c1.get(), c3 - c2.get(), c4 - c3];
        let c0 = nb::cpu_time();
        if with_rr {
            drop(nb::pendulum_hvp(&params, HvpMode::ReverseOverReverse));
        }
        let rr = nb::cpu_time() - c0;
        rows.push([grad[0], grad[1], grad[2], fr[0], fr[1], fr[2], fr[3], rr]);
    }
    let med: Vec<f64> = (0..8)
        .map(|k| nb::median(&rows.iter().map(|r| r[k]).collect::<Vec<_>>()))
        .collect();
    let g: f64 = med[..3].iter().sum();
    let fr: f64 = med[3..7].iter().sum();
    println!("rk4-pendulum (median CPU time over {repeats} runs, ms):");
    println!(
        "  gradient: forward {:.2}, backward {:.2}, drop {:.2}; total {:.2}",
        med[0] * 1e3,
        med[1] * 1e3,
        med[2] * 1e3,
        g * 1e3
    );
    println!(
        "  hvp forward over reverse: forward {:.2}, backward {:.2}, rest of jvp {:.2}, drop {:.2}; total {:.2} = {:.2} gradients",
        med[3] * 1e3,
        med[4] * 1e3,
        med[5] * 1e3,
        med[6] * 1e3,
        fr * 1e3,
        fr / g
    );
    println!(
        "  hvp reverse over reverse: total {:.2} = {:.2} gradients",
        med[7] * 1e3,
        med[7] / g
    );
}
