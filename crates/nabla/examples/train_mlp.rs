//! Trains a small MLP on the bundled 8×8 digits data with Adam and prints its accuracy.
//!
//! The model is a plain struct with `#[derive(Module)]`; `loss.backward()` returns the gradients
//! of its parameters and `Adam::step` updates them. Evaluation runs in `eval()` mode under
//! `no_grad`, so no graph is recorded for it.
//!
//! Run it with `cargo run --release --example train_mlp` (about a second; a debug build is slower).

use nabla::data::{DataLoader, datasets};
use nabla::nn::{Forward, Linear, Module, accuracy, cross_entropy};
use nabla::optim::{Adam, Optimizer};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{Indices, Tensor, no_grad};

/// 64 pixels -> 64 hidden units -> 10 classes.
#[derive(Module)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    fn new(rng: &mut StdRng) -> Mlp {
        Mlp {
            hidden: Linear::new(64, 64, rng),
            out: Linear::new(64, 10, rng),
        }
    }
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.out.forward(&self.hidden.forward(x).relu())
    }
}

/// Held-out accuracy, without recording a graph.
fn evaluate(model: &mut Mlp, x: &Tensor, labels: &Indices) -> f64 {
    model.eval();
    let logits = no_grad(|| model.forward(x));
    model.train();
    accuracy(&logits, labels)
}

fn main() {
    // 1,797 images of 8×8 pixels in [0, 1], labels 0-9; 80% for training.
    let path = datasets::bundled_data_dir().join("digits/digits.csv.gz");
    let data = datasets::digits(path).expect("the digits data ships in data/digits");
    let (train, test) = data.split(0.8, 42);
    let test_labels = Indices::from_slice(test.labels().expect("class labels"));
    println!("{} training and {} test images", train.len(), test.len());

    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Mlp::new(&mut rng);
    let mut opt = Adam::new(3e-3);
    println!("{} parameters", model.num_parameters());
    let loader = DataLoader::new(train, 32).shuffle(7);

    for epoch in 0..8 {
        let mut total = 0.0;
        for (x, y) in loader.epoch(epoch) {
            let y = Indices::from_slice(y.labels().expect("class labels"));
            let loss = cross_entropy(&model.forward(&x), &y);
            let grads = loss.backward();
            opt.step(&mut model, &grads);
            total += loss.item();
        }
        let acc = evaluate(&mut model, test.inputs(), &test_labels);
        println!(
            "epoch {epoch}: mean training loss {:.4}, test accuracy {:.2}%",
            total / loader.num_batches() as f64,
            100.0 * acc
        );
    }
    let acc = evaluate(&mut model, test.inputs(), &test_labels);
    assert!(acc > 0.9, "accuracy {acc}");
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
