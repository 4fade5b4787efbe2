//! What the DNC experiments share: the copy and associative-recall tasks (Graves et al. 2014),
//! the masked bit loss and bit error rate, an LSTM baseline, and heat maps of memory weightings.

use crate::experiment::{Heatmap, OptSpec};
use nabla::nn::dnc::{Dnc, DncConfig, DncState};
use nabla::nn::{Forward, Linear, Lstm, Module};
use nabla::rand::{Rng, RngExt};
use nabla::{DType, Tensor, no_grad};

/// Bits per vector in both tasks.
pub const BITS: usize = 6;

/// A batch of sequences: inputs `[B, T, I]`, targets `[B, T, BITS]` and a mask `[B, T, 1]` that
/// is 1 on the steps where the answer is expected.
pub struct Batch {
    /// Inputs.
    pub x: Tensor,
    /// Targets.
    pub y: Tensor,
    /// Answer steps.
    pub mask: Tensor,
}

fn random_bits<R: Rng + ?Sized>(rng: &mut R) -> [f32; BITS] {
    let mut v = [0.0; BITS];
    for b in &mut v {
        *b = if rng.random::<bool>() { 1.0 } else { 0.0 };
    }
    v
}

/// Copy task: `len` random 6-bit vectors, then one step with the delimiter channel (channel 6)
/// set, then `len` blank steps during which the sequence must be reproduced. `T = 2 len + 1`,
/// 7 input channels.
pub fn copy_batch<R: Rng + ?Sized>(batch: usize, len: usize, rng: &mut R) -> Batch {
    let (t, ci) = (2 * len + 1, BITS + 1);
    let mut x = vec![0.0f32; batch * t * ci];
    let mut y = vec![0.0f32; batch * t * BITS];
    let mut m = vec![0.0f32; batch * t];
    for b in 0..batch {
        for s in 0..len {
            let v = random_bits(rng);
            x[(b * t + s) * ci..(b * t + s) * ci + BITS].copy_from_slice(&v);
            let out = b * t + len + 1 + s;
            y[out * BITS..(out + 1) * BITS].copy_from_slice(&v);
            m[out] = 1.0;
        }
        x[(b * t + len) * ci + BITS] = 1.0;
    }
    Batch {
        x: Tensor::from_vec(x, [batch, t, ci]),
        y: Tensor::from_vec(y, [batch, t, BITS]),
        mask: Tensor::from_vec(m, [batch, t, 1]),
    }
}

/// Input channels of [`copy_batch`].
pub const COPY_INPUTS: usize = BITS + 1;
/// Input channels of [`recall_batch`].
pub const RECALL_INPUTS: usize = BITS + 2;
/// Steps per item in associative recall.
pub const ITEM_STEPS: usize = 3;

/// Associative recall: `items` items of three 6-bit vectors, each after a delimiter step
/// (channel 6); then the query, one of the items but the last, between two steps of a second
/// delimiter (channel 7); then three blank steps during which the item that followed the query
/// must be produced. `T = 4 items + 8`, 8 input channels.
pub fn recall_batch<R: Rng + ?Sized>(batch: usize, items: usize, rng: &mut R) -> Batch {
    assert!(items >= 2, "recall_batch: at least 2 items, got {items}");
    let t = (ITEM_STEPS + 1) * items + ITEM_STEPS + 2 + ITEM_STEPS;
    let ci = RECALL_INPUTS;
    let mut x = vec![0.0f32; batch * t * ci];
    let mut y = vec![0.0f32; batch * t * BITS];
    let mut m = vec![0.0f32; batch * t];
    for b in 0..batch {
        let content: Vec<[f32; BITS]> = (0..items * ITEM_STEPS).map(|_| random_bits(rng)).collect();
        let at = |s: usize| (b * t + s) * ci;
        let mut s = 0;
        for item in 0..items {
            x[at(s) + BITS] = 1.0;
            s += 1;
            for k in 0..ITEM_STEPS {
                x[at(s)..at(s) + BITS].copy_from_slice(&content[item * ITEM_STEPS + k]);
                s += 1;
            }
        }
        let q = rng.random_range(0..items - 1);
        x[at(s) + BITS + 1] = 1.0;
        s += 1;
        for k in 0..ITEM_STEPS {
            x[at(s)..at(s) + BITS].copy_from_slice(&content[q * ITEM_STEPS + k]);
            s += 1;
        }
        x[at(s) + BITS + 1] = 1.0;
        s += 1;
        for k in 0..ITEM_STEPS {
            let o = b * t + s;
            y[o * BITS..(o + 1) * BITS].copy_from_slice(&content[(q + 1) * ITEM_STEPS + k]);
            m[o] = 1.0;
            s += 1;
        }
    }
    Batch {
        x: Tensor::from_vec(x, [batch, t, ci]),
        y: Tensor::from_vec(y, [batch, t, BITS]),
        mask: Tensor::from_vec(m, [batch, t, 1]),
    }
}

/// Binary cross-entropy of `logits [B, T, BITS]` against the batch targets, averaged over the
/// answer bits only.
pub fn masked_bce(logits: &Tensor, batch: &Batch) -> Tensor {
    let per_bit = logits.softplus() - logits * &batch.y; // = BCE with logits
    let answer_bits = batch.mask.sum().item() * BITS as f64;
    (per_bit * &batch.mask).sum() / answer_bits.max(1.0)
}

/// Wrong bits (logit sign against the target) among the answer bits: `(wrong, total)`.
pub fn bit_errors(logits: &Tensor, batch: &Batch) -> (f64, f64) {
    let l = logits.to_dtype(DType::F64).to_vec::<f64>();
    let y = batch.y.to_vec::<f32>();
    let m = batch.mask.to_vec::<f32>();
    let (mut wrong, mut total) = (0.0, 0.0);
    for (step, &on) in m.iter().enumerate() {
        if on > 0.0 {
            for k in 0..BITS {
                let i = step * BITS + k;
                total += 1.0;
                if (l[i] > 0.0) != (y[i] > 0.5) {
                    wrong += 1.0;
                }
            }
        }
    }
    (wrong, total)
}

/// A sequence model: `[B, T, I]` -> logits `[B, T, O]`.
pub trait SeqModel: Module {
    /// Logits of every step.
    fn logits(&self, x: &Tensor) -> Tensor;
}

impl SeqModel for Dnc {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_sequence(x, None).0
    }
}

/// The LSTM baseline: an LSTM and a linear read-out of every step.
#[derive(Module)]
pub struct LstmBaseline {
    lstm: Lstm,
    head: Linear,
}

impl LstmBaseline {
    /// A baseline with `hidden` units.
    pub fn new<R: Rng + ?Sized>(inputs: usize, outputs: usize, hidden: usize, rng: &mut R) -> Self {
        LstmBaseline {
            lstm: Lstm::new(inputs, hidden, rng),
            head: Linear::new(hidden, outputs, rng),
        }
    }

    /// The hidden size whose parameter count is closest to `params`.
    pub fn hidden_for(params: usize, inputs: usize, outputs: usize) -> usize {
        let count = |h: usize| 4 * h * (inputs + h + 2) + h * outputs + outputs;
        (1..4096)
            .min_by_key(|&h| count(h).abs_diff(params))
            .unwrap_or(1)
    }
}

impl SeqModel for LstmBaseline {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.lstm.forward(x))
    }
}

/// Bit error rate of `model` over the batches (no gradient).
pub fn bit_error_rate(model: &dyn SeqModel, batches: &[Batch]) -> f64 {
    let (mut wrong, mut total) = (0.0, 0.0);
    for b in batches {
        let logits = no_grad(|| model.logits(&b.x));
        let (w, t) = bit_errors(&logits, b);
        wrong += w;
        total += t;
    }
    wrong / total.max(1.0)
}

/// A DNC of the experiments' shape (`f32`).
pub fn dnc<R: Rng + ?Sized>(
    inputs: usize,
    hidden: usize,
    slots: usize,
    word: usize,
    heads: usize,
    sparse: Option<usize>,
    rng: &mut R,
) -> Dnc {
    let cfg = DncConfig {
        input_size: inputs,
        output_size: BITS,
        hidden_size: hidden,
        memory_size: slots,
        word_size: word,
        read_heads: heads,
        sparse,
        dtype: DType::F32,
    };
    Dnc::new(cfg, rng)
}

/// Heat maps of the write weighting and of the first read head's weighting over the steps of the
/// first sequence of `x` (slots as rows, steps as columns).
pub fn weighting_heatmaps(dnc: &Dnc, x: &Tensor, prefix: &str, name: &str) -> Vec<Heatmap> {
    let first = x.narrow(0, 0, 1);
    let states: Vec<DncState> = no_grad(|| dnc.forward_sequence(&first, None).1);
    let n = dnc.config().memory_size;
    let steps = states.len();
    // row i (memory slot i) holds the weights of slot i at steps 1..=steps
    let mut write = vec![0.0; n * steps];
    let mut read = vec![0.0; n * steps];
    for (t, s) in states.iter().enumerate() {
        let w = s.write_weights.to_dtype(DType::F64).to_vec::<f64>();
        let r = s.read_weights.to_dtype(DType::F64).to_vec::<f64>();
        for i in 0..n {
            write[i * steps + t] = w[i];
            read[i * steps + t] = r[i];
        }
    }
    let map = |file: &str, what: &str, values| Heatmap {
        file: format!("{prefix}{file}"),
        title: format!("{name}: {what} weighting over time"),
        x_label: "time step".into(),
        y_label: "memory slot".into(),
        value_label: "weight".into(),
        xs: (1..=steps).map(|t| t as f64).collect(),
        ys: (0..n).map(|i| i as f64).collect(),
        values,
    };
    vec![
        map("write_weights.png", "write", write),
        map("read_weights.png", "read (head 1)", read),
    ]
}

/// The options of the memory and its controller that the DNC tasks share.
pub fn model_options() -> [OptSpec; 4] {
    [
        OptSpec::int("memory-slots", "memory slots N", 32).range(2, 1 << 16),
        OptSpec::int("word-size", "memory word size W", 16).range(1, 4096),
        OptSpec::int("read-heads", "read heads R", 1).range(1, 64),
        OptSpec::int("hidden", "LSTM controller units", 64).range(1, 4096),
    ]
}

/// The training options that the DNC tasks share.
pub fn training_options() -> [OptSpec; 3] {
    [
        OptSpec::float("lr", "Adam learning rate", 1e-3)
            .greater_than(0.0)
            .quick(3e-3),
        OptSpec::float("clip", "gradient clipping by global norm (0: none)", 10.0).min(0.0),
        OptSpec::int("batch-size", "sequences per step", 16).range(1, 1 << 16),
    ]
}
