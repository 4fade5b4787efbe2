//! Runs one rk4-pendulum computation a number of times in a row, for counting its instructions or
//! cycles with `perf stat` (counts that a loaded machine disturbs less than times):
//!
//! ```text
//! perf stat -e instructions:u,cycles:u target/release/examples/hvp_repeat grad 20
//! perf stat -e instructions:u,cycles:u target/release/examples/hvp_repeat fwd-rev 20
//! ```
//!
//! `grad` is the gradient, `fwd-rev` and `rev-rev` the Hessian-vector product along (1, 1, 1)
//! in either mode; the difference of two counts with different repeats is the cost of the extra
//! calls.

use nabla::HvpMode;
use nabla_bench as nb;

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "grad".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let params = nb::pendulum_params();
    for _ in 0..n {
        match what.as_str() {
            "grad" => drop(std::hint::black_box(nb::pendulum_grad(&params))),
            "fwd-rev" => drop(std::hint::black_box(nb::pendulum_hvp(
                &params,
                HvpMode::ForwardOverReverse,
            ))),
            "rev-rev" => drop(std::hint::black_box(nb::pendulum_hvp(
                &params,
                HvpMode::ReverseOverReverse,
            ))),
            other => panic!("hvp_repeat: unknown computation {other} (grad, fwd-rev, rev-rev)"),
        }
    }
}
