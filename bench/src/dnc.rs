//! The dnc-step workload: one training step of a Differentiable Neural Computer (`nabla::nn::dnc`)
//! with RMSProp: batch 16, 20 steps of 8-bit inputs, LSTM controller 64, memory 32 x 16, 4 read
//! heads, sigmoid cross-entropy on every output. Its PyTorch twin is `reference/dnc_torch.py`.

use crate::inputs::{det_unit, set_det_params};
use nabla::nn::dnc::{Dnc, DncConfig};
use nabla::optim::{Optimizer, RmsProp};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};

/// Seed of the dnc-step inputs (`SEEDS["dnc"]` in `reference/common.py`).
pub const SEED: u64 = 50;
/// Batch, sequence length, bits.
pub const SHAPE: [usize; 3] = [16, 20, 8];

fn bits(seed: u64) -> Tensor {
    let n = SHAPE.iter().product();
    let v: Vec<f32> = det_unit(seed, n)
        .into_iter()
        .map(|u| if u < 0.5 { 0.0 } else { 1.0 })
        .collect();
    Tensor::from_vec(v, SHAPE.to_vec())
}

/// The model with the shared initial parameters, its inputs `[16, 20, 8]` and targets.
pub fn dnc_inputs() -> (Dnc, Tensor, Tensor) {
    let cfg = DncConfig {
        input_size: 8,
        output_size: 8,
        hidden_size: 64,
        memory_size: 32,
        word_size: 16,
        read_heads: 4,
        sparse: None,
        dtype: DType::F32,
    };
    let mut model = Dnc::new(cfg, &mut StdRng::seed_from_u64(0));
    set_det_params(&mut model, SEED);
    (model, bits(SEED + 1), bits(SEED + 2))
}

/// The loss of the dnc-step model on `(x, y)`.
pub fn dnc_loss(model: &Dnc, x: &Tensor, y: &Tensor) -> Tensor {
    let logits = model.forward_sequence(x, None).0;
    nabla::nn::binary_cross_entropy_with_logits(&logits, y, None)
}

/// The optimiser of dnc-step: RMSProp, lr 1e-3, alpha 0.99, eps 1e-8 (PyTorch's defaults).
pub fn dnc_optimizer() -> RmsProp {
    RmsProp::new(1e-3)
}

/// One training step (forward, backward, RMSProp update); returns the loss.
pub fn dnc_step(model: &mut Dnc, opt: &mut RmsProp, x: &Tensor, y: &Tensor) -> f64 {
    let loss = dnc_loss(model, x, y);
    let grads = loss.backward();
    opt.step(model, &grads);
    loss.item()
}

/// Cross-check figures from the shared start: loss and gradient sums of step 1, loss of step 2.
pub fn dnc_check() -> [(&'static str, f64); 4] {
    use nabla::nn::Module;
    let (mut model, x, y) = dnc_inputs();
    let mut opt = dnc_optimizer();
    let loss = dnc_loss(&model, &x, &y);
    let grads = loss.backward();
    let params = model.parameters();
    let (s, a) = crate::inputs::sums(params.iter().map(|p| grads.get(p).expect("gradient")));
    opt.step(&mut model, &grads);
    let l2 = dnc_step(&mut model, &mut opt, &x, &y);
    [
        ("loss", loss.item()),
        ("grad_sum", s),
        ("grad_abs", a),
        ("loss_step2", l2),
    ]
}
