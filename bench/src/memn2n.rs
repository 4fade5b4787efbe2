//! memn2n-step: one training step of the end-to-end memory network of the `memnn-babi` experiment
//! (3 hops, d = 20, 50 memory slots, PE and temporal encoding, adjacent tying) at batch 32, on a
//! bAbI-shaped batch from the shared deterministic generator: forward, cross-entropy summed over
//! the batch (as the experiment and the paper's code), backward,
//! gradient clipping to norm 40, SGD (lr 0.01). Its PyTorch twin is
//! `bench/reference/memn2n_torch.py`; both build the same inputs and parameters from
//! `inputs::det_unit` / `det_normal` (seed `seeds::MEMN2N`).

use crate::inputs::{det_normal, det_unit};
use nabla::nn::{MemN2N, MemN2NConfig, MemoryBatch, Module, cross_entropy};
use nabla::optim::{Optimizer, Sgd, clip_grad_norm};
use nabla::{DType, Indices, Tensor};

/// Seed of the memn2n-step inputs (`SEEDS["memn2n"]` in `common.py`).
pub const SEED: u64 = 50;
/// Batch, memory slots, words per sentence, vocabulary (with nil), embedding, hops.
pub const B: usize = 32;
/// Memory slots.
pub const M: usize = 50;
/// Words per sentence.
pub const J: usize = 8;
/// Vocabulary, the nil word included.
pub const V: usize = 40;
/// Embedding dimension.
pub const D: usize = 20;
/// Hops.
pub const HOPS: usize = 3;

/// `n` integers in `lo..lo + span` from seed `seed`.
fn det_ints(seed: u64, n: usize, lo: usize, span: usize) -> Vec<usize> {
    det_unit(seed, n)
        .into_iter()
        .map(|u| lo + (u * span as f64).floor() as usize)
        .collect()
}

/// The batch: story `[B, M, J]` and query `[B, J]` token ids (stories of 10 to 50 sentences of 3
/// to 8 words, questions of 4 words, nil-padded; slot 0 the newest) and answers `[B]`.
pub fn inputs() -> (MemoryBatch, Indices) {
    let words = det_ints(SEED * 1000 + 1, B * M * J, 1, V - 1);
    let sent_len = det_ints(SEED * 1000 + 2, B * M, 3, J - 2);
    let story_len = det_ints(SEED * 1000 + 3, B, 10, M - 9);
    let qwords = det_ints(SEED * 1000 + 4, B * J, 1, V - 1);
    let answers = det_ints(SEED * 1000 + 5, B, 1, V - 1);
    let mut story = vec![0usize; B * M * J];
    let mut query = vec![0usize; B * J];
    for b in 0..B {
        for m in 0..story_len[b] {
            for j in 0..sent_len[b * M + m] {
                let i = (b * M + m) * J + j;
                story[i] = words[i];
            }
        }
        for j in 0..4 {
            query[b * J + j] = qwords[b * J + j];
        }
    }
    (
        MemoryBatch {
            story: Indices::new(story, [B, M, J]),
            query: Indices::new(query, [B, J]),
            time: None,
        },
        Indices::from_slice(&answers),
    )
}

/// The network with the shared initial parameters: `E_k = 0.1 · det_normal(SEED·1000 + 10 + k)`,
/// `T_k = 0.1 · det_normal(SEED·1000 + 20 + k)`.
pub fn model() -> MemN2N {
    let cfg = MemN2NConfig {
        memory_size: M,
        dtype: DType::F32,
        ..MemN2NConfig::babi(V, J)
    };
    let e = (0..=HOPS)
        .map(|k| det_normal(SEED * 1000 + 10 + k as u64, &[V, D]) * 0.1)
        .collect();
    let t = (0..=HOPS)
        .map(|k| det_normal(SEED * 1000 + 20 + k as u64, &[M, D]) * 0.1)
        .collect();
    MemN2N::from_parameters(cfg, e, t)
}

/// One training step; returns the loss.
pub fn step(net: &mut MemN2N, opt: &mut Sgd, batch: &MemoryBatch, answers: &Indices) -> f64 {
    let loss = cross_entropy(&net.forward(batch), answers) * B as f64;
    let mut grads = loss.backward();
    clip_grad_norm(&mut grads, 40.0);
    opt.step(net, &grads);
    loss.item()
}

/// The cross-check: loss and gradient sums (before clipping) of step 1, loss of step 2.
pub fn check() -> [(&'static str, f64); 4] {
    let mut net = model();
    let mut opt = Sgd::new(0.01);
    let (batch, answers) = inputs();
    let loss = cross_entropy(&net.forward(&batch), &answers) * B as f64;
    let mut grads = loss.backward();
    let params: Vec<Tensor> = net.parameters();
    let (s, a) = crate::inputs::sums(params.iter().map(|p| grads.get(p).expect("gradient")));
    clip_grad_norm(&mut grads, 40.0);
    opt.step(&mut net, &grads);
    let loss2 = step(&mut net, &mut opt, &batch, &answers);
    [
        ("loss", loss.item()),
        ("grad_sum", s),
        ("grad_abs", a),
        ("loss_step2", loss2),
    ]
}
