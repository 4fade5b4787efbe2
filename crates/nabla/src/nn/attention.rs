//! Scaled dot-product attention (Vaswani et al. 2017) and multi-head attention.

use super::{Dropout, Forward, Linear, Module, ParamKind, join};
use crate::{DType, Tensor};
use rand::Rng;

/// `softmax(q kᵀ / √d + mask) v` over the last two dimensions; returns the output and the attention
/// weights. `q: [..., Lq, d]`, `k: [..., Lk, d]`, `v: [..., Lk, dv]`; `mask` (broadcast to
/// `[..., Lq, Lk]`) holds 1.0 where attention is NOT allowed and 0.0 where it is (a row that allows
/// nothing gives NaN, as in PyTorch).
///
/// ```
/// use nabla::nn::scaled_dot_product_attention;
/// use nabla::{DType, Tensor};
/// let q = Tensor::ones([1, 2, 4], DType::F64);
/// let v = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 3, 2]);
/// let (out, w) = scaled_dot_product_attention(&q, &Tensor::ones([1, 3, 4], DType::F64), &v, None);
/// assert_eq!(out.to_vec::<f64>(), vec![3.0, 4.0, 3.0, 4.0]); // uniform weights average v
/// assert_eq!(w.dims(), &[1, 2, 3]);
/// ```
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let d = q.dim(-1);
    if k.dim(-1) != d || k.dim(-2) != v.dim(-2) {
        panic!(
            "scaled_dot_product_attention: q {}, k {}, v {} do not fit ([..., Lq, d], [..., Lk, d], [..., Lk, dv])",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    let mut scores = q.matmul(&k.t()) * (1.0 / (d as f64).sqrt());
    if let Some(m) = mask {
        let blocked = scores.full_like(f64::NEG_INFINITY);
        scores = m.gt_scalar(0.0).where_(&blocked, &scores);
    }
    let w = scores.softmax(-1);
    (w.matmul(v), w)
}

/// Multi-head attention as `torch.nn.MultiheadAttention(batch_first=True)`: inputs `[B, L, E]`,
/// `heads` heads of size `E / heads`, input projections `in_proj_weight [3E, E]` and
/// `in_proj_bias [3E]`, output projection `out_proj`.
///
/// ```
/// use nabla::nn::MultiHeadAttention;
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let mha = MultiHeadAttention::new(8, 2, &mut rng);
/// let x = Tensor::randn([3, 5, 8], DType::F32, &mut rng);
/// let mask = MultiHeadAttention::causal_mask(5, DType::F32);
/// let (y, w) = mha.forward_qkv(&x, &x, &x, None, Some(&mask));
/// assert_eq!((y.dims(), w.dims()), (&[3, 5, 8][..], &[3, 5, 5][..]));
/// assert_eq!(w.to_vec::<f32>()[1], 0.0); // position 0 cannot see position 1
/// ```
pub struct MultiHeadAttention {
    /// `[3E, E]`: query, key and value projections stacked.
    pub in_proj_weight: Tensor,
    /// `[3E]`.
    pub in_proj_bias: Tensor,
    /// `E → E`.
    pub out_proj: Linear,
    heads: usize,
    dropout: Option<Dropout>,
}

impl MultiHeadAttention {
    /// `embed` features split into `heads` heads (f32; Xavier-uniform projections, zero biases).
    pub fn new<R: Rng + ?Sized>(embed: usize, heads: usize, rng: &mut R) -> MultiHeadAttention {
        if heads == 0 || !embed.is_multiple_of(heads) {
            panic!("MultiHeadAttention: embed dim {embed} is not divisible by {heads} heads");
        }
        let in_proj_weight =
            super::init::xavier_uniform([3 * embed, embed], 1.0, DType::F32, rng).variable();
        let mut out_proj = Linear::new(embed, embed, rng);
        out_proj.bias = Some(Tensor::zeros([embed], DType::F32).variable());
        MultiHeadAttention {
            in_proj_weight,
            in_proj_bias: Tensor::zeros([3 * embed], DType::F32).variable(),
            out_proj,
            heads,
            dropout: None,
        }
    }

    /// Dropout with probability `p` on the attention weights in training mode.
    pub fn with_dropout<R: Rng + ?Sized>(mut self, p: f64, rng: &mut R) -> MultiHeadAttention {
        self.dropout = Some(Dropout::new(p, rng));
        self
    }

    /// A `[L, L]` mask that blocks attention to later positions (1.0 above the diagonal).
    pub fn causal_mask(len: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = (0..len * len)
            .map(|i| if i % len > i / len { 1.0 } else { 0.0 })
            .collect();
        Tensor::from_vec(v, [len, len]).to_dtype(dtype)
    }

    /// Attention of `query [B, Lq, E]` over `key`/`value [B, Lk, E]`. `key_padding_mask [B, Lk]`
    /// has 1.0 at padding positions to ignore; `attn_mask [Lq, Lk]` (or `[B·heads, Lq, Lk]`) has 1.0
    /// where attention is blocked. Returns the output `[B, Lq, E]` and the weights averaged over
    /// heads `[B, Lq, Lk]`.
    pub fn forward_qkv(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        key_padding_mask: Option<&Tensor>,
        attn_mask: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let e = self.in_proj_weight.dims()[1];
        for (name, t) in [("query", query), ("key", key), ("value", value)] {
            if t.rank() != 3 || t.dim(-1) != e {
                panic!(
                    "MultiHeadAttention: {name} {} is not [B, L, {e}]",
                    t.shape()
                );
            }
        }
        let (b, lq, lk) = (query.dims()[0], query.dims()[1], key.dims()[1]);
        let (h, d) = (self.heads, e / self.heads);
        let w = self.in_proj_weight.chunk(3, 0);
        let bias = self.in_proj_bias.chunk(3, 0);
        let heads = |x: &Tensor, i: usize, len: usize| {
            (x.matmul(&w[i].t()) + &bias[i])
                .reshape([b, len, h, d])
                .permute([0, 2, 1, 3])
        };
        let (q, k, v) = (heads(query, 0, lq), heads(key, 1, lk), heads(value, 2, lk));
        let mut mask: Option<Tensor> = None;
        if let Some(m) = attn_mask {
            let m = match m.rank() {
                2 => m.clone(),
                3 => m.reshape([b, h, lq, lk]),
                _ => panic!(
                    "MultiHeadAttention: attn_mask {} is not [Lq, Lk] or [B·heads, Lq, Lk]",
                    m.shape()
                ),
            };
            mask = Some(m);
        }
        if let Some(p) = key_padding_mask {
            if p.dims() != [b, lk] {
                panic!(
                    "MultiHeadAttention: key_padding_mask {} is not [{b}, {lk}]",
                    p.shape()
                );
            }
            let p = p.reshape([b, 1, 1, lk]);
            mask = Some(match mask {
                Some(m) => m.maximum(&p),
                None => p,
            });
        }
        let (out, weights) = {
            let d2 = q.dim(-1) as f64;
            let mut scores = q.matmul(&k.t()) * (1.0 / d2.sqrt());
            if let Some(m) = &mask {
                scores = m
                    .gt_scalar(0.0)
                    .where_(&scores.full_like(f64::NEG_INFINITY), &scores);
            }
            let mut wts = scores.softmax(-1);
            if let Some(dr) = &self.dropout {
                wts = dr.forward(&wts);
            }
            (wts.matmul(&v), wts)
        };
        let out = out.permute([0, 2, 1, 3]).reshape([b, lq, e]);
        (self.out_proj.forward(&out), weights.mean_axis(1, false))
    }
}

impl Forward for MultiHeadAttention {
    /// Self-attention without masks.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_qkv(x, x, x, None, None).0
    }
}

impl Module for MultiHeadAttention {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(
            &join(prefix, "in_proj_weight"),
            &self.in_proj_weight,
            ParamKind::Trainable,
        );
        f(
            &join(prefix, "in_proj_bias"),
            &self.in_proj_bias,
            ParamKind::Trainable,
        );
        self.out_proj.visit(&join(prefix, "out_proj"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(
            &join(prefix, "in_proj_weight"),
            &mut self.in_proj_weight,
            ParamKind::Trainable,
        );
        f(
            &join(prefix, "in_proj_bias"),
            &mut self.in_proj_bias,
            ParamKind::Trainable,
        );
        self.out_proj.visit_mut(&join(prefix, "out_proj"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
}
