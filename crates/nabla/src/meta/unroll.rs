//! Unrolled inner training loops, with truncation and gradient checkpointing.

use super::{DiffOptimizer, OptState, Order, inner_grad};
use crate::autodiff::checkpoint;
use crate::tensor::{Shape, Tensor};
use std::sync::{Arc, Mutex};

/// How [`unroll`] runs an inner loop.
#[derive(Clone, Debug)]
pub struct Unroll {
    /// Number of inner updates.
    pub steps: usize,
    /// Whether the meta-gradient goes through the inner gradients ([`Order::Second`]) or treats
    /// them as constants ([`Order::First`]).
    pub order: Order,
    /// Truncated backpropagation: with `Some(k)`, gradients flow only through the last `k`
    /// updates (the parameters and optimiser state are detached before them).
    pub truncate: Option<usize>,
    /// Gradient checkpointing: with `Some(s)`, the updates run in blocks of `s` whose inside is
    /// not stored but recomputed during the backward pass. Memory grows with `steps / s` stored
    /// states plus one block's graph instead of with `steps` graphs.
    pub checkpoint_every: Option<usize>,
}

impl Unroll {
    /// `steps` second-order updates, no truncation, no checkpointing.
    pub fn new(steps: usize) -> Unroll {
        Unroll {
            steps,
            order: Order::Second,
            truncate: None,
            checkpoint_every: None,
        }
    }
    /// Sets the order of the meta-gradient.
    pub fn order(mut self, order: Order) -> Unroll {
        self.order = order;
        self
    }
    /// Backpropagates through the last `k` updates only.
    pub fn truncate(mut self, k: usize) -> Unroll {
        self.truncate = Some(k);
        self
    }
    /// Checkpoints blocks of `s` updates (`s ≥ 1`).
    pub fn checkpoint_every(mut self, s: usize) -> Unroll {
        if s == 0 {
            panic!("Unroll::checkpoint_every: the block length must be at least 1");
        }
        self.checkpoint_every = Some(s);
        self
    }
}

/// What [`unroll`] returns.
#[derive(Clone, Debug)]
pub struct Unrolled {
    /// The parameters after the last update.
    pub params: Vec<Tensor>,
    /// The optimiser state after the last update.
    pub state: OptState,
    /// The sum of the inner losses evaluated before each update, differentiable (the meta-loss of
    /// Andrychowicz et al. 2016 with unit weights).
    pub loss_sum: Tensor,
    /// The inner losses' values, one per update.
    pub losses: Vec<f64>,
}

impl Unrolled {
    /// Parameters and state cut off from differentiation, to start the next truncated segment.
    pub fn detach(&self) -> (Vec<Tensor>, OptState) {
        (
            self.params.iter().map(Tensor::detach).collect(),
            self.state.detach(),
        )
    }
}

/// The tensors flattened and concatenated into one vector (all of one dtype).
///
/// ```
/// use nabla::meta::{pack, unpack};
/// use nabla::Tensor;
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
/// let b = Tensor::scalar(5.0f64);
/// let flat = pack(&[a.clone(), b.clone()]);
/// assert_eq!(flat.dims(), &[5]);
/// let back = unpack(&flat, &[a.shape().clone(), b.shape().clone()]);
/// assert_eq!(back[0].to_vec::<f64>(), a.to_vec::<f64>());
/// assert_eq!(back[1].item(), 5.0);
/// ```
pub fn pack(tensors: &[Tensor]) -> Tensor {
    let flat: Vec<Tensor> = tensors.iter().map(|t| t.reshape([t.numel()])).collect();
    Tensor::concat(&flat, 0)
}

/// Splits a vector made by [`pack`] back into tensors of the given shapes.
///
/// # Panics
/// If the shapes' sizes do not add up to the vector's length.
pub fn unpack(flat: &Tensor, shapes: &[Shape]) -> Vec<Tensor> {
    let total: usize = shapes.iter().map(Shape::numel).sum();
    if flat.dims() != [total] {
        panic!(
            "unpack: a vector of {total} elements is needed for these shapes, got {}",
            flat.shape()
        );
    }
    let mut at = 0;
    shapes
        .iter()
        .map(|s| {
            let n = s.numel();
            let t = flat.narrow(0, at, n).reshape(s.clone());
            at += n;
            t
        })
        .collect()
}

/// One inner update: the loss at the current parameters, its gradient, the optimiser's step.
fn one_step<O, L>(
    opt: &O,
    params: &[Tensor],
    state: &OptState,
    order: Order,
    loss: &L,
) -> (Vec<Tensor>, OptState, Tensor)
where
    O: DiffOptimizer,
    L: Fn(usize, &[Tensor]) -> Tensor + ?Sized,
{
    let step = state.step;
    let (value, grads) = inner_grad(|p: &[Tensor]| loss(step, p), params, order);
    let (next, state) = opt.update(params, &grads, state);
    (next, state, value.reshape(Shape::scalar()))
}

type LossFn = dyn Fn(usize, &[Tensor]) -> Tensor + Send + Sync;

/// Runs `cfg.steps` updates of `opt` on the inner loss `loss(step, params)` (`step` is the
/// optimiser's step count, for losses that draw a different batch each step) from `params` and
/// `state`, recording whatever an enclosing transform needs to differentiate the result with
/// respect to the initial parameters, the optimiser's hyperparameter tensors, or tensors the loss
/// captures.
///
/// With `cfg.checkpoint_every`, the loss is called again during the backward pass and must be a
/// pure function of its arguments; tensors it captures are then constants (pass what should
/// receive gradients as parameters or hyperparameters).
///
/// ```
/// use nabla::meta::{DiffMomentum, DiffOptimizer, Unroll, unroll};
/// use nabla::{value_and_grad, Tensor};
/// let loss = |_: usize, w: &[Tensor]| (&w[0] * &w[0]).sum() * 0.5;
/// let meta = |cfg: Unroll| move |h: &[Tensor]| {
///     let opt = DiffMomentum::new(h[0].clone(), h[1].clone());
///     let w = vec![Tensor::from_vec(vec![1.0f64, -2.0], [2])];
///     unroll(&opt, &w, &opt.init(&w), &cfg, loss).loss_sum
/// };
/// let h = [Tensor::scalar(0.1f64), Tensor::scalar(0.5f64)];
/// let (a, ga) = value_and_grad(meta(Unroll::new(20)), &h);
/// let (b, gb) = value_and_grad(meta(Unroll::new(20).checkpoint_every(5)), &h);
/// assert!((a.item() - b.item()).abs() < 1e-12);
/// assert!((ga[0].item() - gb[0].item()).abs() < 1e-9);
/// assert!((ga[1].item() - gb[1].item()).abs() < 1e-9);
/// ```
pub fn unroll<O, L>(opt: &O, params: &[Tensor], state: &OptState, cfg: &Unroll, loss: L) -> Unrolled
where
    O: DiffOptimizer,
    L: Fn(usize, &[Tensor]) -> Tensor + Send + Sync + 'static,
{
    if params.is_empty() {
        panic!("unroll: no parameters");
    }
    let loss: Arc<LossFn> = Arc::new(loss);
    let mut params = params.to_vec();
    let mut state = state.clone();
    let mut loss_sum = params[0].detach().sum().zeros_like();
    let mut losses = Vec::with_capacity(cfg.steps);
    let free = cfg.truncate.map_or(0, |k| cfg.steps.saturating_sub(k));
    let mut done = 0;
    while done < cfg.steps {
        if done == free && free > 0 {
            params = params.iter().map(Tensor::detach).collect();
            state = state.detach();
        }
        // run to the next truncation point, block boundary or the end
        let limit = if done < free { free } else { cfg.steps };
        let block = cfg.checkpoint_every.unwrap_or(usize::MAX).min(limit - done);
        if cfg.checkpoint_every.is_none() {
            let (p, s, l) = one_step(opt, &params, &state, cfg.order, &*loss);
            losses.push(l.item());
            loss_sum = loss_sum + l;
            params = p;
            state = s;
            done += 1;
            continue;
        }
        let (p, s, l, values) = checkpointed_block(opt, &params, &state, cfg.order, &loss, block);
        losses.extend(values);
        loss_sum = loss_sum + l;
        params = p;
        state = s;
        done += block;
    }
    Unrolled {
        params,
        state,
        loss_sum,
        losses,
    }
}

/// `n` updates inside one [`checkpoint`]: parameters, buffers and the block's loss sum travel
/// packed in one vector; the hyperparameters are the checkpoint's other inputs.
fn checkpointed_block<O: DiffOptimizer>(
    opt: &O,
    params: &[Tensor],
    state: &OptState,
    order: Order,
    loss: &Arc<LossFn>,
    n: usize,
) -> (Vec<Tensor>, OptState, Tensor, Vec<f64>) {
    let np = params.len();
    let mut carried: Vec<Tensor> = params.to_vec();
    carried.extend(state.buffers.iter().cloned());
    let shapes: Vec<Shape> = carried.iter().map(|t| t.shape().clone()).collect();
    let mut inputs = vec![pack(&carried)];
    inputs.extend(opt.hyper());
    let step0 = state.step;
    let values = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let block = {
        let opt = opt.clone();
        let loss = loss.clone();
        let shapes = shapes.clone();
        let values = values.clone();
        move |xs: &[Tensor]| {
            let opt = opt.with_hyper(&xs[1..]);
            let mut parts = unpack(&xs[0], &shapes);
            let buffers = parts.split_off(np);
            let mut p = parts;
            let mut s = OptState {
                step: step0,
                buffers,
            };
            let mut sum = xs[0].sum().zeros_like();
            let mut vals = Vec::with_capacity(n);
            for _ in 0..n {
                let (p2, s2, l) = one_step(&opt, &p, &s, order, &*loss);
                vals.push(l.item());
                sum = sum + l;
                p = p2;
                s = s2;
            }
            *values.lock().expect("loss values") = vals;
            let mut out = p;
            out.extend(s.buffers);
            out.push(sum.reshape([1]));
            pack(&out)
        }
    };
    let out = checkpoint(block, &inputs);
    let values = std::mem::take(&mut *values.lock().expect("loss values"));
    let mut shapes = shapes;
    shapes.push(Shape::from([1usize]));
    let mut parts = unpack(&out, &shapes);
    let sum = parts.pop().expect("loss sum").reshape(Shape::scalar());
    let buffers = parts.split_off(np);
    (
        parts,
        OptState {
            step: step0 + n,
            buffers,
        },
        sum,
        values,
    )
}
