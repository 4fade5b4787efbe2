//! Times the `lstm` benchmark (BENCHMARKS-SPEC.md): LSTM input 32, hidden 128, 50 steps, batch 16,
//! inputs N(0, 1), loss = sum of all hidden outputs, forward + backward w.r.t. all weights.
//! Usage: `cargo run --release -p nabla --example _lstm_bench [reps]`; prints the median per iteration.
use nabla::nn::{Forward, Lstm, Module};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::time::Instant;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let (b, t, i, h) = (16, 50, 32, 128);
    let mut rng = StdRng::seed_from_u64(0);
    let lstm = Lstm::new(i, h, &mut rng);
    let x = Tensor::randn([b, t, i], DType::F32, &mut rng);
    let params = lstm.parameters();
    let step = || {
        let loss = lstm.forward(&x).sum();
        let g = loss.backward();
        assert_eq!(g.len(), params.len());
        std::hint::black_box(g);
    };
    for _ in 0..30 {
        step();
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        step();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "nabla lstm fwd+bwd: median {:.3} ms  p10 {:.3} ms  min {:.3} ms  ({reps} runs, {} rayon threads)",
        times[reps / 2] * 1e3,
        times[reps / 10] * 1e3,
        times[0] * 1e3,
        rayon::current_num_threads()
    );
}
