//! Criterion benches for developers: `cargo bench -p nabla-bench --features criterion` (or
//! `-- matmul` to pick some).
//! The side-by-side comparison with PyTorch and JAX is `bench/run.sh`, not this.

use criterion::{Criterion, criterion_group, criterion_main};
use nabla_bench as nb;
use std::hint::black_box;
use std::time::Duration;

fn scalar_chain(c: &mut Criterion) {
    let inputs = nb::scalar_chain_inputs();
    let mut g = c.benchmark_group("scalar-chain");
    g.bench_function("record+backward", |b| {
        b.iter(|| nb::scalar_chain_grad(black_box(&inputs)))
    });
    g.bench_function("no-grad", |b| {
        b.iter(|| nb::scalar_chain_no_grad(black_box(&inputs)))
    });
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.measurement_time(Duration::from_secs(5));
    for n in [256, 1024] {
        let (a, b) = nb::matmul_inputs(n);
        g.throughput(criterion::Throughput::Elements(nb::matmul_flops(n) as u64));
        g.bench_function(format!("{n}"), |bn| {
            bn.iter(|| black_box(&a).matmul(black_box(&b)))
        });
    }
    g.finish();
}

fn rk4_pendulum(c: &mut Criterion) {
    let params = nb::pendulum_params();
    let mut g = c.benchmark_group("rk4-pendulum");
    g.sample_size(20);
    g.bench_function("forward", |b| {
        b.iter(|| nabla::no_grad(|| nb::pendulum_loss(black_box(&params))))
    });
    g.bench_function("grad", |b| b.iter(|| nb::pendulum_grad(black_box(&params))));
    g.finish();
}

criterion_group!(benches, scalar_chain, matmul, rk4_pendulum);
criterion_main!(benches);
