//! Loss functions, with PyTorch's semantics and defaults (mean reduction).

use crate::{Indices, Tensor};

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (weighted mean where class weights are given), the default.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per element (per sample for classification losses).
    None,
}

fn reduce(l: Tensor, r: Reduction) -> Tensor {
    match r {
        Reduction::Mean => l.mean(),
        Reduction::Sum => l.sum(),
        Reduction::None => l,
    }
}

fn same_shape(op: &str, a: &Tensor, b: &Tensor) {
    if a.shape() != b.shape() {
        panic!(
            "{op}: prediction {} and target {} differ in shape",
            a.shape(),
            b.shape()
        );
    }
}

/// Mean squared error.
///
/// ```
/// use nabla::{nn::mse_loss, Tensor};
/// let p = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
/// let t = Tensor::from_vec(vec![0.0f64, 4.0], [2]);
/// assert_eq!(mse_loss(&p, &t).item(), 2.5);
/// ```
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    same_shape("mse_loss", pred, target);
    (pred - target).square().mean()
}

/// Mean absolute error.
pub fn l1_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    same_shape("l1_loss", pred, target);
    (pred - target).abs().mean()
}

/// Huber loss (smooth L1 for `delta = 1`): quadratic within `delta`, linear outside, as
/// `torch.nn.functional.huber_loss`.
///
/// ```
/// use nabla::{nn::huber_loss, Tensor};
/// let p = Tensor::from_vec(vec![0.5f64, 3.0], [2]);
/// let t = Tensor::zeros([2], nabla::DType::F64);
/// assert_eq!(huber_loss(&p, &t, 1.0).item(), (0.125 + 2.5) / 2.0);
/// ```
pub fn huber_loss(pred: &Tensor, target: &Tensor, delta: f64) -> Tensor {
    same_shape("huber_loss", pred, target);
    if delta <= 0.0 {
        panic!("huber_loss: delta must be positive, got {delta}");
    }
    let d = (pred - target).abs();
    let quad = d.lt_scalar(delta);
    quad.where_(&(d.square() * 0.5), &((&d - 0.5 * delta) * delta))
        .mean()
}

/// Options of [`cross_entropy_with`] and [`nll_loss_with`].
#[derive(Clone, Debug, Default)]
pub struct ClassLossOpts {
    /// A weight per class `[C]` (rescales each sample's loss by its target class's weight; the
    /// mean is then weighted).
    pub weight: Option<Tensor>,
    /// Label smoothing ε in `[0, 1]`: the target distribution is `(1-ε)·one_hot + ε/C`.
    pub label_smoothing: f64,
    /// Reduction.
    pub reduction: Reduction,
}

/// `[N, C, d…]` scores and `[N, d…]` targets as `[M, C]` and `[M]` (class axis last).
fn flatten_classes(op: &str, scores: &Tensor, targets: &Indices) -> (Tensor, Indices) {
    if scores.rank() < 1 {
        panic!(
            "{op}: scores must be [N, C] or [N, C, d...], got {}",
            scores.shape()
        );
    }
    if scores.rank() == 1 {
        if targets.len() != 1 {
            panic!(
                "{op}: scores {} need one target, got {}",
                scores.shape(),
                targets.shape()
            );
        }
        return (scores.unsqueeze(0), targets.reshape([1]));
    }
    let c = scores.dims()[1];
    let mut want: Vec<usize> = vec![scores.dims()[0]];
    want.extend_from_slice(&scores.dims()[2..]);
    if targets.dims() != want.as_slice() {
        panic!(
            "{op}: scores {} need targets of shape {want:?}, got {}",
            scores.shape(),
            targets.shape()
        );
    }
    if let Some(m) = targets.max()
        && m >= c
    {
        panic!("{op}: target class {m} is out of range for {c} classes");
    }
    if scores.rank() == 2 {
        return (scores.clone(), targets.clone());
    }
    let mut perm: Vec<usize> = vec![0];
    perm.extend(2..scores.rank());
    perm.push(1);
    let m = targets.len();
    (scores.permute(&perm).reshape([m, c]), targets.reshape([m]))
}

/// Negative log-likelihood of `log_probs [N, C]` (or `[N, C, d…]`) at the `targets`.
pub fn nll_loss(log_probs: &Tensor, targets: &Indices) -> Tensor {
    nll_loss_with(log_probs, targets, &ClassLossOpts::default())
}

/// [`nll_loss`] with class weights, label smoothing and a reduction.
pub fn nll_loss_with(log_probs: &Tensor, targets: &Indices, opts: &ClassLossOpts) -> Tensor {
    class_loss("nll_loss", log_probs, targets, opts)
}

fn class_loss(op: &str, log_probs: &Tensor, targets: &Indices, opts: &ClassLossOpts) -> Tensor {
    let (lp, t) = flatten_classes(op, log_probs, targets);
    let (m, c) = (lp.dims()[0], lp.dims()[1]);
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        panic!("{op}: label smoothing must be in [0, 1], got {eps}");
    }
    let picked = lp.gather(1, &t.reshape([m, 1])).reshape([m]).neg();
    let (w_sample, smooth) = match &opts.weight {
        Some(w) => {
            if w.dims() != [c] {
                panic!("{op}: class weights {} do not match {c} classes", w.shape());
            }
            let w = w.to_dtype(lp.dtype());
            (
                Some(w.index_select(0, &t)),
                (lp.neg() * &w).sum_axis(1, false),
            )
        }
        None => (None, lp.neg().sum_axis(1, false)),
    };
    let mut per = match &w_sample {
        Some(ws) => picked * ws,
        None => picked,
    };
    if eps > 0.0 {
        per = per * (1.0 - eps) + smooth * (eps / c as f64);
    }
    match (opts.reduction, &w_sample) {
        (Reduction::Mean, Some(ws)) => per.sum() / ws.sum(),
        (r, _) => {
            let per = if log_probs.rank() > 2 && r == Reduction::None {
                let mut d = vec![log_probs.dims()[0]];
                d.extend_from_slice(&log_probs.dims()[2..]);
                per.reshape(d)
            } else {
                per
            };
            reduce(per, r)
        }
    }
}

/// Cross-entropy from unnormalised scores: `logits [N, C]` (or `[N, C, d…]`) and class `targets`
/// `[N]` (or `[N, d…]`), as `torch.nn.functional.cross_entropy`.
///
/// ```
/// use nabla::{nn::cross_entropy, Indices, Tensor};
/// let logits = Tensor::from_vec(vec![2.0f64, 0.0, 0.0, 2.0], [2, 2]);
/// let loss = cross_entropy(&logits, &Indices::from(vec![0, 1]));
/// assert!((loss.item() - (1.0 + (-2f64).exp()).ln()).abs() < 1e-12);
/// ```
pub fn cross_entropy(logits: &Tensor, targets: &Indices) -> Tensor {
    cross_entropy_with(logits, targets, &ClassLossOpts::default())
}

/// [`cross_entropy`] with class weights, label smoothing and a reduction.
pub fn cross_entropy_with(logits: &Tensor, targets: &Indices, opts: &ClassLossOpts) -> Tensor {
    let axis = if logits.rank() == 1 { 0 } else { 1 };
    class_loss("cross_entropy", &logits.log_softmax(axis), targets, opts)
}

/// Binary cross-entropy from logits, computed stably: `max(x, 0) - x·t + ln(1 + e^{-|x|})`,
/// with an optional weight for positive examples (`pos_weight`, broadcast over the last dim).
///
/// ```
/// use nabla::{nn::binary_cross_entropy_with_logits, Tensor};
/// let x = Tensor::from_vec(vec![0.0f64], [1]);
/// let t = Tensor::from_vec(vec![1.0f64], [1]);
/// assert!((binary_cross_entropy_with_logits(&x, &t, None).item() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binary_cross_entropy_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    pos_weight: Option<&Tensor>,
) -> Tensor {
    same_shape("binary_cross_entropy_with_logits", logits, targets);
    // softplus(-x) = ln(1 + e^{-x}) = max(-x, 0) + ln(1 + e^{-|x|})
    let sp_neg = logits.neg().softplus();
    let l = match pos_weight {
        None => (1.0 - targets) * logits + &sp_neg,
        Some(pw) => {
            let coef = (pw - 1.0) * targets + 1.0;
            (1.0 - targets) * logits + coef * &sp_neg
        }
    };
    l.mean()
}

/// Fraction of rows of `logits [N, C]` whose largest score is at the target class.
pub fn accuracy(logits: &Tensor, targets: &Indices) -> f64 {
    let pred = logits.argmax(-1, false);
    if pred.len() != targets.len() {
        panic!(
            "accuracy: {} predictions for {} targets",
            pred.len(),
            targets.len()
        );
    }
    let hits = pred
        .iter()
        .zip(targets.iter())
        .filter(|(a, b)| a == b)
        .count();
    hits as f64 / targets.len().max(1) as f64
}
