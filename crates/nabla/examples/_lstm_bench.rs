//! Times the `lstm` benchmark (BENCHMARKS-SPEC.md): LSTM input 32, hidden 128, 50 steps, batch 16,
//! inputs N(0, 1), loss = sum of all hidden outputs, forward + backward w.r.t. all weights.
//! Usage: `cargo run --release -p nabla --example _lstm_bench [reps] [lstm|gru|rnn]`; prints the
//! median per iteration (the same shapes for the GRU and the tanh RNN).
use nabla::nn::{Forward, Gru, Lstm, Module, Rnn};
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
    let kind = std::env::args().nth(2).unwrap_or_else(|| "lstm".into());
    let net: Box<dyn nabla::nn::Layer> = match kind.as_str() {
        "lstm" => Box::new(Lstm::new(i, h, &mut rng)),
        "gru" => Box::new(Gru::new(i, h, &mut rng)),
        "rnn" => Box::new(Rnn::new(i, h, &mut rng)),
        k => panic!("unknown network {k}"),
    };
    let x = Tensor::randn([b, t, i], DType::F32, &mut rng);
    let params = net.parameters();
    let step = || {
        let loss = net.forward(&x).sum();
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
        "nabla {kind} fwd+bwd: median {:.3} ms  p10 {:.3} ms  min {:.3} ms  ({reps} runs, {} rayon threads)",
        times[reps / 2] * 1e3,
        times[reps / 10] * 1e3,
        times[0] * 1e3,
        rayon::current_num_threads()
    );
}
