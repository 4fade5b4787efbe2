//! The first call of a compiled function in a fresh process (trace, lowering, first replay), in
//! process CPU time and wall time: a profiling aid for the `first_s` figures of the harness, whose
//! wall time a loaded machine inflates. One workload per process, as the harness runs it:
//!
//! ```text
//! cargo run --release -p nabla-bench --example first_call -- rk4-pendulum
//! cargo run --release -p nabla-bench --example first_call -- scalar-chain
//! ```

use nabla_bench as nb;
use std::time::Instant;

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "rk4-pendulum".into());
    let (cf, xs) = match name.as_str() {
        "rk4-pendulum" => (nb::pendulum_compiled(), nb::pendulum_params().to_vec()),
        "scalar-chain" => (
            nb::scalar_chain_compiled(),
            nb::scalar_chain_inputs().to_vec(),
        ),
        other => panic!("first_call: unknown workload {other} (rk4-pendulum, scalar-chain)"),
    };
    let (c0, w0) = (nb::cpu_time(), Instant::now());
    let (y, _) = cf.value_and_grad(&xs);
    let (c1, w1) = (nb::cpu_time(), w0.elapsed().as_secs_f64());
    let (c2, w2) = (nb::cpu_time(), Instant::now());
    cf.value_and_grad(&xs);
    let (c3, w3) = (nb::cpu_time(), w2.elapsed().as_secs_f64());
    println!(
        "{name}: first call {:.2} ms CPU ({:.2} ms wall), next call {:.3} ms CPU ({:.3} ms wall); \
         tape of {} instructions; loss {}",
        (c1 - c0) * 1e3,
        w1 * 1e3,
        (c3 - c2) * 1e3,
        w3 * 1e3,
        cf.stats().tape_len,
        y.item()
    );
}
