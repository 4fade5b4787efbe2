//! End-to-end memory network (MemN2N, Sukhbaatar, Szlam, Weston and Fergus 2015, "End-To-End
//! Memory Networks"): a story of sentences is written into memory slots, a question is embedded
//! into a controller vector `u`, and each of `K` hops reads the memory by soft attention
//! (`p = softmax(m · u)`, `o = Σ pᵢ cᵢ`, `u ← u + o`); the answer is `softmax(W u)` over the
//! vocabulary.
//!
//! What the paper's best 1k-example setting (PE LS RN) needs is here:
//! - **adjacent weight tying**: `K + 1` embedding matrices `E₀ … E_K`; the question embedding is
//!   `B = E₀`, hop `k` reads keys with `Aᵏ = E_{k-1}` and values with `Cᵏ = E_k`, and the answer
//!   matrix is `W = E_K` (logits `u E_Kᵀ`);
//! - **position encoding** ([`position_encoding`]): a sentence is `Σⱼ lⱼ ⊙ A xⱼ` with
//!   `l_kj = (1 - j/J) - (k/d)(1 - 2j/J)` instead of a bag of words;
//! - **temporal encoding**: a learned vector per memory slot, `T_A(i)` added to the keys and
//!   `T_C(i)` to the values, tied across hops like the embeddings. Slot 0 holds the most recent
//!   sentence, slot 1 the one before, and so on;
//! - **linear start** ([`MemN2N::linear_start`]): while on, the attention softmax of every hop is
//!   removed (`p = m · u`); the paper trains this way until the validation loss stops falling,
//!   then switches the softmax back on;
//! - **random noise** (RN, time jitter): [`MemoryBatch::new`] can give the sentences of a training
//!   story jittered temporal indices, as if up to `rate · n` empty memories were interleaved at
//!   random among its `n` sentences (the paper: 10%); the sentences themselves all stay in memory.
//!
//! Token id 0 is the nil (padding) word: it contributes nothing to a sentence, and a slot whose
//! tokens are all 0 is empty and receives no attention.

use super::{Module, ParamKind, join};
use crate::{DType, Indices, Tensor};
use rand::{Rng, RngExt};

/// `t` as a trainable variable, unless it already belongs to a recorded computation or carries a
/// forward-mode tangent (then derivatives must flow through it to what it came from, as in a
/// gradient check or a meta-learning step).
pub(crate) fn trainable(t: Tensor) -> Tensor {
    if t.requires_grad() || !t.0.tangents.is_empty() {
        t
    } else {
        t.variable()
    }
}

/// The sizes and switches of a [`MemN2N`].
#[derive(Clone, Debug, PartialEq)]
pub struct MemN2NConfig {
    /// Words, including the nil word 0.
    pub vocab_size: usize,
    /// Embedding dimension `d` (the paper: 20).
    pub embed_dim: usize,
    /// Memory hops `K` (the paper: 3).
    pub hops: usize,
    /// Memory slots, i.e. the most recent sentences kept (the paper: 50).
    pub memory_size: usize,
    /// Words per sentence `J` (sentences and questions are padded with 0 to this length).
    pub sentence_len: usize,
    /// Position encoding of the words of a sentence (else a bag of words).
    pub position_encoding: bool,
    /// Temporal encoding of the memory slots.
    pub temporal_encoding: bool,
    /// Standard deviation of the normal initialisation (the paper: 0.1).
    pub init_std: f64,
    /// Whether empty slots stay in the attention softmax as zero vectors (keys and values 0, no
    /// temporal term), as in the paper's code, where they give the attention a place to go when
    /// no sentence matches; otherwise they are masked out.
    pub attend_empty: bool,
    /// Element type of the parameters.
    pub dtype: DType,
}

impl MemN2NConfig {
    /// The paper's sizes for bAbI (d = 20, 3 hops, 50 slots, PE and TE on) for a vocabulary and
    /// sentence length.
    pub fn babi(vocab_size: usize, sentence_len: usize) -> MemN2NConfig {
        MemN2NConfig {
            vocab_size,
            embed_dim: 20,
            hops: 3,
            memory_size: 50,
            sentence_len,
            position_encoding: true,
            temporal_encoding: true,
            init_std: 0.1,
            attend_empty: false,
            dtype: DType::F32,
        }
    }
}

/// The position-encoding matrix `l` of shape `[J, d]`: `l[j][k] = (1 - j/J) - (k/d)(1 - 2j/J)`
/// with 1-based `j` (word) and `k` (embedding coordinate), as in section 4.1 of the paper.
///
/// ```
/// use nabla::{nn::position_encoding, DType};
/// let l = position_encoding(4, 2, DType::F64);
/// assert_eq!(l.dims(), &[4, 2]);
/// // last word, first coordinate: (1 - 4/4) - (1/2)(1 - 8/4) = 0.5
/// assert!((l.to_vec::<f64>()[6] - 0.5).abs() < 1e-12);
/// ```
pub fn position_encoding(sentence_len: usize, embed_dim: usize, dtype: DType) -> Tensor {
    let (jj, dd) = (sentence_len as f64, embed_dim as f64);
    let mut v = Vec::with_capacity(sentence_len * embed_dim);
    for j in 1..=sentence_len {
        for k in 1..=embed_dim {
            let (j, k) = (j as f64, k as f64);
            v.push((1.0 - j / jj) - (k / dd) * (1.0 - 2.0 * j / jj));
        }
    }
    Tensor::from_vec(v, [sentence_len, embed_dim]).to_dtype(dtype)
}

/// A batch of stories and questions as token ids, ready for [`MemN2N::forward`].
#[derive(Clone, Debug)]
pub struct MemoryBatch {
    /// `[B, M, J]`: slot 0 is the most recent sentence; padding and empty slots are 0.
    pub story: Indices,
    /// `[B, J]`.
    pub query: Indices,
    /// `[B, M]`: the row of the temporal matrices that each slot reads, or `None` for the slot's
    /// own index (slot `i` reads row `i`). Random noise makes these differ.
    pub time: Option<Indices>,
}

impl MemoryBatch {
    /// Packs `stories[b]` (sentences in the order they were told, each a list of token ids) and
    /// `queries[b]` into a batch of `memory_size` slots of `sentence_len` words. Only the most
    /// recent `memory_size` sentences are kept. With `noise = Some((rate, rng))` (the paper's
    /// random noise, rate 0.1, for training only), the `n` kept sentences of a story get temporal
    /// indices as if `k` empty memories (`k` uniform in `0..=ceil(rate · n)`) were interleaved
    /// at random among them: `n` distinct draws from `0..n + k`, sorted so that newer sentences
    /// keep smaller indices, capped at `memory_size - 1`. Without noise slot `i` has index `i`.
    ///
    /// # Panics
    /// If the batch is empty, the lengths differ, or a sentence or question is longer than
    /// `sentence_len`.
    pub fn new<R: Rng + ?Sized>(
        stories: &[&[Vec<usize>]],
        queries: &[&[usize]],
        memory_size: usize,
        sentence_len: usize,
        mut noise: Option<(f64, &mut R)>,
    ) -> MemoryBatch {
        let b = stories.len();
        if b == 0 || queries.len() != b {
            panic!(
                "MemoryBatch::new: {} stories and {} questions (need the same number, at least 1)",
                b,
                queries.len()
            );
        }
        let (m, j) = (memory_size, sentence_len);
        let mut story = vec![0usize; b * m * j];
        let mut query = vec![0usize; b * j];
        let mut time: Vec<usize> = (0..b * m).map(|i| i % m).collect();
        for (s, sentences) in stories.iter().enumerate() {
            // newest first: slot index grows towards the past
            let kept = sentences.len().min(m);
            if let Some((rate, rng)) = noise.as_mut() {
                let blanks = rng.random_range(0..=(*rate * kept as f64).ceil() as usize);
                let mut draws =
                    rand::seq::index::sample(&mut **rng, kept + blanks, kept).into_vec();
                draws.sort_unstable();
                for (slot, t) in draws.into_iter().enumerate() {
                    time[s * m + slot] = t.min(m - 1);
                }
            }
            for (slot, sent) in sentences.iter().rev().take(kept).enumerate() {
                if sent.len() > j {
                    panic!(
                        "MemoryBatch::new: a sentence of {} words is longer than sentence_len {j}",
                        sent.len()
                    );
                }
                let base = (s * m + slot) * j;
                story[base..base + sent.len()].copy_from_slice(sent);
            }
            let q = queries[s];
            if q.len() > j {
                panic!(
                    "MemoryBatch::new: a question of {} words is longer than sentence_len {j}",
                    q.len()
                );
            }
            query[s * j..s * j + q.len()].copy_from_slice(q);
        }
        MemoryBatch {
            story: Indices::new(story, [b, m, j]),
            query: Indices::new(query, [b, j]),
            time: noise.map(|_| Indices::new(time, [b, m])),
        }
    }

    /// Batch size.
    pub fn len(&self) -> usize {
        self.query.dims()[0]
    }

    /// Whether the batch has no example (never, for a batch made by [`MemoryBatch::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The word weights of a batch of sentences `tokens` (`[..., J]`): `l` ([`position_encoding`],
/// or ones for a bag of words) where the token is not nil, 0 where it is; shape `[..., J, d]`.
pub fn word_weights(tokens: &Indices, encoding: &Tensor) -> Tensor {
    let j = *tokens
        .dims()
        .last()
        .expect("word_weights: tokens of rank 0");
    if encoding.rank() != 2 || encoding.dims()[0] != j {
        panic!(
            "word_weights: encoding {} does not match sentences of {j} words",
            encoding.shape()
        );
    }
    let mask: Vec<f64> = tokens
        .iter()
        .map(|&t| if t == 0 { 0.0 } else { 1.0 })
        .collect();
    let mut dims = tokens.dims().to_vec();
    dims.push(1);
    Tensor::from_vec(mask, dims).to_dtype(encoding.dtype()) * encoding
}

/// Embeds sentences: `Σⱼ weights[..., j, :] ⊙ embedding[tokens[..., j]]`, shape `[..., d]` for
/// `tokens` of shape `[..., J]`, `weights` from [`word_weights`] and `embedding` `[V, d]`.
///
/// # Panics
/// If a token is not below `V` or the shapes disagree.
pub fn embed_sentences(tokens: &Indices, weights: &Tensor, embedding: &Tensor) -> Tensor {
    let d = embedding.dim(-1);
    let mut dims = tokens.dims().to_vec();
    dims.push(d);
    if weights.dims() != dims.as_slice() {
        panic!(
            "embed_sentences: weights {} for tokens {} and embedding {}",
            weights.shape(),
            tokens.shape(),
            embedding.shape()
        );
    }
    let words = embedding.index_select(0, &tokens.flatten()).reshape(dims);
    (words * weights).sum_axis(-2, false)
}

/// One memory hop: attention of the controller `u` (`[B, d]`) over the keys `m` (`[B, M, d]`),
/// skipping slots where `empty` (`[B, M]`, 1 = empty) is set; returns `(u + Σ pᵢ cᵢ, p)` with
/// values `c` (`[B, M, d]`). With `softmax = false` (linear start), `p = m · u` unnormalised.
pub fn memory_hop(
    u: &Tensor,
    m: &Tensor,
    c: &Tensor,
    empty: &Tensor,
    softmax: bool,
) -> (Tensor, Tensor) {
    if m.rank() != 3 || u.dims() != [m.dims()[0], m.dims()[2]] || c.dims() != m.dims() {
        panic!(
            "memory_hop: controller {}, keys {}, values {} (need [B, d], [B, M, d], [B, M, d])",
            u.shape(),
            m.shape(),
            c.shape()
        );
    }
    let scores = m.matmul(&u.unsqueeze(-1)).squeeze(-1); // [B, M]
    let p = if softmax {
        scores.masked_fill(empty, -1e30).softmax(-1)
    } else {
        scores.masked_fill(empty, 0.0)
    };
    let o = p.unsqueeze(1).matmul(c).squeeze(1); // [B, d]
    (u + o, p)
}

/// An end-to-end memory network with adjacent weight tying. See the module docs.
///
/// ```
/// use nabla::nn::{MemN2N, MemN2NConfig, MemoryBatch};
/// use nabla::rand::{SeedableRng, rngs::StdRng};
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = MemN2NConfig { memory_size: 4, ..MemN2NConfig::babi(10, 3) };
/// let net = MemN2N::new(cfg, &mut rng);
/// let story = vec![vec![1, 2, 3], vec![4, 5]];
/// let batch = MemoryBatch::new::<StdRng>(&[&story], &[&[6, 7]], 4, 3, None);
/// assert_eq!(net.forward(&batch).dims(), &[1, 10]); // answer logits over the vocabulary
/// ```
pub struct MemN2N {
    /// `E₀ … E_K`, each `[V, d]`.
    pub embeddings: Vec<Tensor>,
    /// `T₀ … T_K`, each `[M, d]` (empty without temporal encoding).
    pub temporal: Vec<Tensor>,
    /// While true, hops use no softmax (the paper's linear start).
    pub linear_start: bool,
    config: MemN2NConfig,
    encoding: Tensor,
}

impl MemN2N {
    /// A network with `N(0, init_std²)` parameters.
    pub fn new<R: Rng + ?Sized>(config: MemN2NConfig, rng: &mut R) -> MemN2N {
        let n = config.hops + 1;
        let (v, d, m, dt) = (
            config.vocab_size,
            config.embed_dim,
            config.memory_size,
            config.dtype,
        );
        let std = config.init_std;
        let embeddings = (0..n)
            .map(|_| (Tensor::randn([v, d], dt, rng) * std).variable())
            .collect();
        let temporal = if config.temporal_encoding {
            (0..n)
                .map(|_| (Tensor::randn([m, d], dt, rng) * std).variable())
                .collect()
        } else {
            Vec::new()
        };
        MemN2N::from_parameters(config, embeddings, temporal)
    }

    /// A network with the given parameters (made trainable variables unless already recorded): `hops + 1` embeddings `[V, d]` and,
    /// with temporal encoding, `hops + 1` temporal matrices `[M, d]`.
    ///
    /// # Panics
    /// If the counts or shapes do not match `config`.
    pub fn from_parameters(
        config: MemN2NConfig,
        embeddings: Vec<Tensor>,
        temporal: Vec<Tensor>,
    ) -> MemN2N {
        let n = config.hops + 1;
        let (v, d, m) = (config.vocab_size, config.embed_dim, config.memory_size);
        if config.hops == 0 || embeddings.len() != n {
            panic!(
                "MemN2N: {} embeddings for {} hops (need hops >= 1 and hops + 1 embeddings)",
                embeddings.len(),
                config.hops
            );
        }
        let want_t = if config.temporal_encoding { n } else { 0 };
        if temporal.len() != want_t {
            panic!(
                "MemN2N: {} temporal matrices, expected {want_t}",
                temporal.len()
            );
        }
        for e in &embeddings {
            if e.dims() != [v, d] {
                panic!("MemN2N: embedding {} is not [{v}, {d}]", e.shape());
            }
        }
        for t in &temporal {
            if t.dims() != [m, d] {
                panic!("MemN2N: temporal matrix {} is not [{m}, {d}]", t.shape());
            }
        }
        let encoding = if config.position_encoding {
            position_encoding(config.sentence_len, d, config.dtype)
        } else {
            Tensor::ones([config.sentence_len, d], config.dtype)
        };
        MemN2N {
            embeddings: embeddings.into_iter().map(trainable).collect(),
            temporal: temporal.into_iter().map(trainable).collect(),
            linear_start: false,
            config,
            encoding,
        }
    }

    /// The sizes and switches.
    pub fn config(&self) -> &MemN2NConfig {
        &self.config
    }

    /// Answer logits `[B, V]`.
    pub fn forward(&self, batch: &MemoryBatch) -> Tensor {
        self.forward_with_attention(batch).0
    }

    /// Answer logits `[B, V]` and each hop's attention over the slots (`[B, M]` each).
    ///
    /// # Panics
    /// If the batch's memory size or sentence length differ from the config's.
    pub fn forward_with_attention(&self, batch: &MemoryBatch) -> (Tensor, Vec<Tensor>) {
        let c = &self.config;
        let (b, m, j) = (batch.len(), c.memory_size, c.sentence_len);
        if batch.story.dims() != [b, m, j] || batch.query.dims() != [b, j] {
            panic!(
                "MemN2N: story {} and query {} do not match memory {m} x sentence length {j}",
                batch.story.shape(),
                batch.query.shape()
            );
        }
        if let Some(t) = &batch.time
            && (t.dims() != [b, m] || t.iter().any(|&i| i >= m))
        {
            panic!(
                "MemN2N: temporal indices {} for a story {} (need [{b}, {m}], each below {m})",
                t.shape(),
                batch.story.shape()
            );
        }
        let story_w = word_weights(&batch.story, &self.encoding);
        let query_w = word_weights(&batch.query, &self.encoding);
        let empty: Vec<f64> = batch
            .story
            .as_slice()
            .chunks(j)
            .map(|s| if s.iter().all(|&t| t == 0) { 1.0 } else { 0.0 })
            .collect();
        let empty = Tensor::from_vec(empty, [b, m]);
        // with `attend_empty`, an empty slot is a zero vector that stays in the softmax
        let filled = c
            .attend_empty
            .then(|| (1.0 - &empty).to_dtype(c.dtype).unsqueeze(-1));
        let slots = |k: usize| {
            let e = embed_sentences(&batch.story, &story_w, &self.embeddings[k]);
            let t = match (self.temporal.get(k), &batch.time) {
                (Some(t), None) => t.clone(),
                (Some(t), Some(time)) => {
                    t.index_select(0, &time.flatten())
                        .reshape([b, m, c.embed_dim])
                }
                (None, _) => return e,
            };
            match &filled {
                Some(f) => e + t * f,
                None => e + t,
            }
        };
        let empty = if c.attend_empty {
            Tensor::zeros([b, m], DType::F64)
        } else {
            empty
        };
        let mut u = embed_sentences(&batch.query, &query_w, &self.embeddings[0]);
        let mut attention = Vec::with_capacity(c.hops);
        let mut keys = slots(0);
        for k in 1..=c.hops {
            let values = slots(k);
            let (next, p) = memory_hop(&u, &keys, &values, &empty, !self.linear_start);
            u = next;
            attention.push(p);
            keys = values;
        }
        (u.matmul(&self.embeddings[c.hops].t()), attention)
    }
}

impl Module for MemN2N {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        for (k, e) in self.embeddings.iter().enumerate() {
            f(
                &join(prefix, &format!("embedding.{k}")),
                e,
                ParamKind::Trainable,
            );
        }
        for (k, t) in self.temporal.iter().enumerate() {
            f(
                &join(prefix, &format!("temporal.{k}")),
                t,
                ParamKind::Trainable,
            );
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        for (k, e) in self.embeddings.iter_mut().enumerate() {
            f(
                &join(prefix, &format!("embedding.{k}")),
                e,
                ParamKind::Trainable,
            );
        }
        for (k, t) in self.temporal.iter_mut().enumerate() {
            f(
                &join(prefix, &format!("temporal.{k}")),
                t,
                ParamKind::Trainable,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_grad;
    use rand::{SeedableRng, rngs::StdRng};

    fn small_config(pe: bool, te: bool) -> MemN2NConfig {
        MemN2NConfig {
            vocab_size: 7,
            embed_dim: 3,
            hops: 2,
            memory_size: 4,
            sentence_len: 3,
            position_encoding: pe,
            temporal_encoding: te,
            init_std: 0.5,
            attend_empty: false,
            dtype: DType::F64,
        }
    }

    fn small_batch() -> MemoryBatch {
        let s1 = vec![vec![1, 2], vec![3, 4, 5], vec![6]];
        let s2 = vec![vec![2, 2, 1]];
        MemoryBatch::new::<StdRng>(&[&s1, &s2], &[&[1, 3], &[5]], 4, 3, None)
    }

    #[test]
    fn batch_puts_the_newest_sentence_first_and_pads_with_nil() {
        let b = small_batch();
        let s = b.story.as_slice();
        assert_eq!(&s[0..3], &[6, 0, 0]);
        assert_eq!(&s[3..6], &[3, 4, 5]);
        assert_eq!(&s[6..9], &[1, 2, 0]);
        assert_eq!(&s[9..12], &[0, 0, 0]);
        assert_eq!(&s[12..15], &[2, 2, 1]);
        assert_eq!(b.query.as_slice(), &[1, 3, 0, 5, 0, 0]);
        assert!(b.time.is_none());
    }

    #[test]
    fn noise_jitters_temporal_indices_and_keeps_every_sentence() {
        let story: Vec<Vec<usize>> = (1..=20).map(|w| vec![w]).collect();
        let clean = MemoryBatch::new::<StdRng>(&[&story], &[&[1]], 24, 1, None);
        let mut rng = StdRng::seed_from_u64(3);
        let mut shifted = false;
        for _ in 0..50 {
            let noisy = MemoryBatch::new(&[&story], &[&[1]], 24, 1, Some((0.1, &mut rng)));
            // the same sentences in the same slots, newest first
            assert_eq!(noisy.story.as_slice(), clean.story.as_slice());
            let t = noisy.time.expect("noise gives temporal indices");
            let t = &t.as_slice()[..20];
            // increasing towards the past, below 20 + ceil(0.1 * 20) = 22
            assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
            assert!(t[19] < 22, "{t:?}");
            shifted |= t[19] > 19;
        }
        assert!(shifted, "some draws interleave blanks");
        // a full memory caps the indices at memory_size - 1 and drops no newer sentence
        let noisy = MemoryBatch::new(&[&story], &[&[1]], 20, 1, Some((0.5, &mut rng)));
        assert_eq!(noisy.story.as_slice()[0], 20);
        assert!(noisy.time.unwrap().iter().all(|&i| i < 20));
    }

    #[test]
    fn nil_words_and_empty_slots_do_not_count() {
        let mut rng = StdRng::seed_from_u64(1);
        let net = MemN2N::new(small_config(true, true), &mut rng);
        let b = small_batch();
        let (_, att) = net.forward_with_attention(&b);
        let p = att[0].to_vec::<f64>();
        assert_eq!(p[3], 0.0); // story 1 has three sentences: slot 3 is empty
        assert!((p[0..4].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // changing the nil word's embedding changes nothing
        let mut e = net.embeddings.clone();
        let bump = Tensor::from_vec(
            (0..21)
                .map(|i| if i < 3 { 5.0 } else { 0.0 })
                .collect::<Vec<f64>>(),
            [7, 3],
        );
        for x in &mut e[..2] {
            *x = &*x + &bump;
        }
        let net2 = MemN2N::from_parameters(net.config.clone(), e, net.temporal.clone());
        let (a, b2) = (net.forward(&b), net2.forward(&b));
        assert!((&a - &b2).abs().max().item() < 1e-12);
    }

    #[test]
    fn empty_slots_can_stay_in_the_softmax() {
        let mut rng = StdRng::seed_from_u64(1);
        let cfg = MemN2NConfig {
            attend_empty: true,
            ..small_config(true, true)
        };
        let net = MemN2N::new(cfg, &mut rng);
        let (_, att) = net.forward_with_attention(&small_batch());
        let p = att[0].to_vec::<f64>();
        // story 1's empty slot 3 scores 0 (a zero key) and takes its share of the softmax
        assert!(p[3] > 0.0);
        assert!((p[0..4].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn embed_sentences_gradient() {
        let mut rng = StdRng::seed_from_u64(2);
        let tokens = Indices::new(vec![1, 2, 0, 3, 3, 1], [2, 3]);
        let w = word_weights(&tokens, &position_encoding(3, 4, DType::F64));
        let e = Tensor::randn([5, 4], DType::F64, &mut rng);
        check_grad(|x: &[Tensor]| embed_sentences(&tokens, &w, &x[0]), &[e]).unwrap();
    }

    #[test]
    fn memory_hop_gradient_with_and_without_softmax() {
        let mut rng = StdRng::seed_from_u64(3);
        let u = Tensor::randn([2, 3], DType::F64, &mut rng);
        let m = Tensor::randn([2, 4, 3], DType::F64, &mut rng);
        let c = Tensor::randn([2, 4, 3], DType::F64, &mut rng);
        let empty = Tensor::from_vec(vec![0.0f64, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 4]);
        for softmax in [true, false] {
            check_grad(
                |x: &[Tensor]| memory_hop(&x[0], &x[1], &x[2], &empty, softmax).0,
                &[u.clone(), m.clone(), c.clone()],
            )
            .unwrap();
        }
    }

    #[test]
    fn whole_network_gradient() {
        for (pe, te, ls, ae) in [
            (true, true, false, false),
            (false, false, false, false),
            (true, true, true, false),
            (true, true, false, true),
        ] {
            let cfg = MemN2NConfig {
                attend_empty: ae,
                ..small_config(pe, te)
            };
            let mut rng = StdRng::seed_from_u64(4);
            let net = MemN2N::new(cfg.clone(), &mut rng);
            let n = net.embeddings.len();
            let params: Vec<Tensor> = net
                .embeddings
                .iter()
                .chain(&net.temporal)
                .map(|t| t.detach())
                .collect();
            let mut b = small_batch();
            if ls || ae {
                // jittered temporal indices (random noise) route gradients to other rows
                b.time = Some(Indices::new(vec![1, 2, 3, 3, 0, 2, 3, 3], [2, 4]));
            }
            check_grad(
                |x: &[Tensor]| {
                    let mut net =
                        MemN2N::from_parameters(cfg.clone(), x[..n].to_vec(), x[n..].to_vec());
                    net.linear_start = ls;
                    net.forward(&b).log_softmax(-1)
                },
                &params,
            )
            .unwrap();
        }
    }

    #[test]
    #[should_panic(expected = "MemN2N: story")]
    fn wrong_batch_shape_panics_with_the_shapes() {
        let mut rng = StdRng::seed_from_u64(1);
        let net = MemN2N::new(small_config(true, true), &mut rng);
        let b = MemoryBatch::new::<StdRng>(&[&[vec![1]]], &[&[1]], 5, 3, None);
        net.forward(&b);
    }
}
