use nabla::*;
use std::time::Instant;
fn main() {
    for _ in 0..3 {
        let t = Instant::now();
        let n = 200;
        for _ in 0..n {
            let x = Tensor::scalar(1.0f32);
            let w = Tensor::scalar(0.999f32);
            let (_, g) = value_and_grad(
                |p: &[Tensor]| {
                    let mut y = p[0].clone();
                    for _ in 0..5000 {
                        y = &y * &p[1];
                        y = y + 0.001;
                    }
                    y
                },
                &[x, w],
            );
            std::hint::black_box(g);
        }
        let el = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "scalar-chain fwd+bwd: {:.3} ms  ({:.0} ns/op)",
            el * 1e3,
            el * 1e9 / 10000.0
        );
        let t = Instant::now();
        for _ in 0..n {
            let x = Tensor::scalar(1.0f32);
            let w = Tensor::scalar(0.999f32);
            let mut y = x.clone();
            for _ in 0..5000 {
                y = &y * &w;
                y = y + 0.001;
            }
            std::hint::black_box(y);
        }
        let el = t.elapsed().as_secs_f64() / n as f64;
        println!("no-record: {:.3} ms", el * 1e3);
    }
}
