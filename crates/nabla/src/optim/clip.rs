//! Gradient clipping.

use crate::Grads;

/// The Euclidean norm of all gradients together.
///
/// The squares are added in the order the variables were created (their node ids), not in the
/// hash map's order, which depends on the ids' values: otherwise the same computation run twice
/// in one process (ids further along) could round differently.
pub fn global_norm(grads: &Grads) -> f64 {
    let mut parts: Vec<(u64, f64)> = grads
        .map
        .iter()
        .map(|(id, g)| (*id, g.square().sum().item()))
        .collect();
    parts.sort_unstable_by_key(|p| p.0);
    parts.iter().map(|p| p.1).sum::<f64>().sqrt()
}

/// Scales all gradients so their global norm is at most `max_norm`, exactly as
/// `torch.nn.utils.clip_grad_norm_` does (scale `max_norm / (norm + 1e-6)` when that is below 1);
/// returns the norm before clipping.
///
/// ```
/// use nabla::{optim::clip_grad_norm, Tensor};
/// let w = Tensor::from_vec(vec![3.0f64, 4.0], [2]).variable();
/// let mut g = (&w * &w).sum().scale(0.5).backward(); // gradient = w, norm 5
/// assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
/// let clipped = g.get(&w).unwrap().to_vec::<f64>();
/// assert!((clipped[0] - 0.6).abs() < 1e-6 && (clipped[1] - 0.8).abs() < 1e-6);
/// ```
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    let s = max_norm / (norm + 1e-6);
    if s < 1.0 {
        for g in grads.map.values_mut() {
            *g = g.scale(s);
        }
    }
    norm
}

/// Clamps every gradient element into `[-value, value]`.
pub fn clip_grad_value(grads: &mut Grads, value: f64) {
    for g in grads.map.values_mut() {
        *g = g.clamp(-value, value);
    }
}
