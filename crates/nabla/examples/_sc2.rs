use nabla::*;
use std::time::Instant;
fn main() {
    let n = 300;
    let (mut tf, mut tb, mut td) = (0.0, 0.0, 0.0);
    for _ in 0..n {
        let x = Tensor::scalar(1.0f32).variable();
        let w = Tensor::scalar(0.999f32).variable();
        let t = Instant::now();
        let mut y = x.clone();
        for _ in 0..5000 {
            y = &y * &w;
            y = y + 0.001;
        }
        tf += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let g = y.backward();
        tb += t.elapsed().as_secs_f64();
        let t = Instant::now();
        drop(y);
        drop(g);
        td += t.elapsed().as_secs_f64();
    }
    println!(
        "fwd {:.3} ms bwd {:.3} ms drop {:.3} ms",
        tf / n as f64 * 1e3,
        tb / n as f64 * 1e3,
        td / n as f64 * 1e3
    );
    println!("Inner size: {}", std::mem::size_of::<Tensor>());
}
