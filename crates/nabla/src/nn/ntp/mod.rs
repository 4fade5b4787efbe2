//! A neural theorem prover (Rocktäschel and Riedel 2017, *End-to-end Differentiable Proving*).
//!
//! Every symbol (predicate, constant, and each learned predicate of a rule) is a row of one
//! embedding matrix. Two symbols *unify* with the score of a radial-basis-function kernel on their
//! distance,
//!
//! ```text
//! k(u, v) = exp(-‖u − v‖² / (2μ²))
//! ```
//!
//! (the squared distance, so the kernel is smooth where two embeddings meet). A proof of a goal is
//! a chain of unifications, found by backward chaining: the goal unifies with a fact, or with the
//! head of a rule whose body atoms are then proven in turn, to a fixed depth; variables bind to the
//! constants of the facts they unify with. A proof scores the minimum of its unification scores
//! and a goal the maximum over its proofs. The rules come from templates such as
//! `#1(X, Y) :- #2(X, Z), #2(Z, Y)`: each `#n` is a learned embedding, read back afterwards as the
//! nearest real predicate ([`Prover::rules`]).
//!
//! Efficiency: the kernel of every pair of symbols is one `S x S` matrix, computed with a matrix
//! product ([`rbf_kernel_matrix`]); the search for each goal's best proof reads that table,
//! keeping the `beam` best facts per sub-goal and the `beam` best partial proofs after each body
//! atom (top-k pruning, as in later NTP work), and records no gradient. The proofs it finds are
//! then scored again as one batched tensor computation ([`proof_scores`]), whose gradient is
//! exactly the gradient of the maximum over the explored proofs (a maximum passes its gradient to
//! its largest argument only).
//!
//! ```
//! use nabla::nn::ntp::{parse_facts, parse_templates, Prover, ProverOptions};
//! use nabla::rand::SeedableRng;
//!
//! let facts = parse_facts("parent(ann,bob).\nparent(bob,cid).\ngrandparent(ann,cid).").unwrap();
//! let templates = parse_templates("1 #1(X, Y) :- #2(X, Z), #2(Z, Y).").unwrap();
//! let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
//! let prover = Prover::new(&facts, &templates, &ProverOptions::default(), &mut rng);
//! let goal = prover.ground(&facts[2]).unwrap();
//! let scores = prover.scores(&[(goal, Some(2))]); // proven without using the fact itself
//! assert!(scores.item() > 0.0 && scores.item() <= 1.0);
//! ```

mod kb;
mod search;

pub use kb::{
    Atom, KbError, Rule, RuleAtom, SymbolKind, Template, Term, Vocab, parse_facts, parse_templates,
};
pub use search::Proof;

use crate::nn::{Module, ParamKind};
use crate::{DType, Indices, Tensor, no_grad};
use rand::Rng;

/// The unification score of pairs of embeddings: `exp(-‖a − b‖² / (2μ²))` along the last axis,
/// for `a` and `b` of the same shape `[..., d]`; the result has shape `[...]`.
///
/// # Panics
/// If the shapes differ.
pub fn rbf_kernel(a: &Tensor, b: &Tensor, mu: f64) -> Tensor {
    if a.dims() != b.dims() || a.rank() == 0 {
        panic!(
            "ntp::rbf_kernel: embeddings {:?} and {:?} must have the same shape [..., d]",
            a.dims(),
            b.dims()
        );
    }
    ((a - b).square().sum_axis(-1, false) * (-0.5 / (mu * mu))).exp()
}

/// The unification score of every row of `a` `[N, d]` with every row of `b` `[M, d]`: `[N, M]`,
/// from one matrix product (`‖a‖² + ‖b‖² − 2 a·bᵀ`, clamped at 0 against rounding).
///
/// # Panics
/// If `a` or `b` is not a matrix or their widths differ.
pub fn rbf_kernel_matrix(a: &Tensor, b: &Tensor, mu: f64) -> Tensor {
    if a.rank() != 2 || b.rank() != 2 || a.dims()[1] != b.dims()[1] {
        panic!(
            "ntp::rbf_kernel_matrix: embeddings {:?} and {:?} must be [N, d] and [M, d]",
            a.dims(),
            b.dims()
        );
    }
    let aa = a.square().sum_axis(1, true);
    let bb = b.square().sum_axis(1, true).t();
    let d2 = (aa + bb - a.matmul(&b.t()) * 2.0).clamp_min(0.0);
    (d2 * (-0.5 / (mu * mu))).exp()
}

/// One proof step of ground goals against every fact: the score of goal `g` with fact `f` is the
/// minimum of the unification scores of their predicates and of each argument. Each argument is a
/// matrix of embeddings, `goals[i]` `[G, d]` and `facts[i]` `[F, d]` (predicate first); the result
/// is `[G, F]`, and its maximum over axis 1 is each goal's best proof by a fact.
///
/// # Panics
/// If the goals and facts have different numbers of arguments or the shapes disagree.
pub fn unify_with_facts(goals: &[Tensor], facts: &[Tensor], mu: f64) -> Tensor {
    if goals.len() != facts.len() || goals.is_empty() {
        panic!(
            "ntp::unify_with_facts: {} goal and {} fact arguments (predicate included) must agree",
            goals.len(),
            facts.len()
        );
    }
    goals
        .iter()
        .zip(facts)
        .map(|(g, f)| rbf_kernel_matrix(g, f, mu))
        .reduce(|a, b| a.minimum(&b))
        .expect("at least one argument")
}

/// The scores of proofs given as lists of unified symbol pairs (rows of `embeddings` `[S, d]`):
/// each proof scores the minimum of `rbf_kernel` over its pairs (1 for no pair). Returns `[N]`.
///
/// # Panics
/// If a symbol is out of range.
pub fn proof_scores(embeddings: &Tensor, proofs: &[Vec<(usize, usize)>], mu: f64) -> Tensor {
    let s = embeddings.dims()[0];
    let len = proofs.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let (mut ia, mut ib) = (Vec::new(), Vec::new());
    for p in proofs {
        // padding unifies symbol 0 with itself: distance 0, score 1, no gradient
        for k in 0..len {
            let (a, b) = p.get(k).copied().unwrap_or((0, 0));
            if a >= s || b >= s {
                panic!("ntp::proof_scores: symbol {} of {s} out of range", a.max(b));
            }
            ia.push(a);
            ib.push(b);
        }
    }
    let n = proofs.len();
    let a = embeddings.index_select(0, &Indices::new(ia, [n * len]));
    let b = embeddings.index_select(0, &Indices::new(ib, [n * len]));
    let d2 = (a - b).square().sum_axis(1, false).reshape([n, len]);
    // the minimum of the kernels is the kernel of the largest distance
    (d2.max_axis(1, false) * (-0.5 / (mu * mu))).exp()
}

/// Settings of a [`Prover`].
#[derive(Clone, Debug)]
pub struct ProverOptions {
    /// Embedding size.
    pub dim: usize,
    /// Kernel width μ.
    pub mu: f64,
    /// Rule applications per proof (0: facts only).
    pub depth: usize,
    /// Facts kept per sub-goal and partial proofs kept per body atom.
    pub beam: usize,
    /// Standard deviation of the initial embeddings, as a multiple of `μ / √dim`.
    pub init_scale: f64,
}

impl Default for ProverOptions {
    fn default() -> Self {
        ProverOptions {
            dim: 20,
            mu: std::f64::consts::FRAC_1_SQRT_2,
            depth: 1,
            beam: 20,
            init_scale: 1.0,
        }
    }
}

/// A learned rule, read back: each learned predicate replaced by the nearest real predicate.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRule {
    /// The minimum over its learned predicates of the kernel with the nearest real predicate.
    pub confidence: f64,
    /// The rule, e.g. `locatedIn(X,Y) :- neighborOf(X,Z), locatedIn(Z,Y)`.
    pub text: String,
}

#[derive(Clone)]
/// A neural theorem prover over a knowledge base of facts and learned rules. Its one trainable
/// tensor is `embeddings` `[S, dim]`, a row for each symbol of [`vocab`](Prover::vocab).
pub struct Prover {
    /// Symbol embeddings `[S, dim]`.
    pub embeddings: Tensor,
    vocab: Vocab,
    facts: Vec<Vec<usize>>,
    rules: Vec<Rule>,
    options: ProverOptions,
}

impl Module for Prover {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(
            &crate::nn::join(prefix, "embeddings"),
            &self.embeddings,
            ParamKind::Trainable,
        );
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(
            &crate::nn::join(prefix, "embeddings"),
            &mut self.embeddings,
            ParamKind::Trainable,
        );
    }
}

impl Prover {
    /// A prover over `facts` with `count` rules of each template, embeddings (f64) drawn from a
    /// normal of standard deviation `init_scale·μ/√dim` (so that two random symbols start at a
    /// kernel of about `exp(-init_scale²)`).
    ///
    /// # Panics
    /// If `options.dim`, `options.mu` or `options.beam` is not positive.
    pub fn new<R: Rng + ?Sized>(
        facts: &[Atom],
        templates: &[Template],
        options: &ProverOptions,
        rng: &mut R,
    ) -> Prover {
        if options.dim == 0 || options.mu <= 0.0 || options.beam == 0 {
            panic!("ntp::Prover::new: dim, mu and beam must be positive, got {options:?}");
        }
        let mut vocab = Vocab::default();
        let facts: Vec<Vec<usize>> = facts
            .iter()
            .map(|a| {
                let mut f = vec![vocab.intern(&a.predicate, SymbolKind::Predicate)];
                f.extend(a.args.iter().map(|c| vocab.intern(c, SymbolKind::Constant)));
                f
            })
            .collect();
        let mut rules = Vec::new();
        for (ti, t) in templates.iter().enumerate() {
            for k in 0..t.count {
                rules.push(Rule::from_template(t, &format!("t{ti}r{k}"), &mut vocab));
            }
        }
        let sd = options.init_scale * options.mu / (options.dim as f64).sqrt();
        let embeddings =
            (Tensor::randn([vocab.len(), options.dim], DType::F64, rng) * sd).variable();
        Prover {
            embeddings,
            vocab,
            facts,
            rules,
            options: options.clone(),
        }
    }

    /// The symbols.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The settings.
    pub fn options(&self) -> &ProverOptions {
        &self.options
    }

    /// Number of facts.
    pub fn num_facts(&self) -> usize {
        self.facts.len()
    }

    /// Number of rule instances.
    pub fn num_rules(&self) -> usize {
        self.rules.len()
    }

    /// A ground atom as symbols (predicate then arguments); `None` when a name is not in the
    /// knowledge base.
    pub fn ground(&self, atom: &Atom) -> Option<Vec<usize>> {
        let mut g = vec![self.vocab.get(&atom.predicate, SymbolKind::Predicate)?];
        for c in &atom.args {
            g.push(self.vocab.get(c, SymbolKind::Constant)?);
        }
        Some(g)
    }

    /// The kernel of every pair of symbols, row-major `[S, S]`, without gradient.
    pub fn similarity_table(&self) -> Vec<f64> {
        no_grad(|| {
            rbf_kernel_matrix(&self.embeddings, &self.embeddings, self.options.mu).to_vec::<f64>()
        })
    }

    /// The best proof of each ground goal (symbols, predicate first), proven without the fact of
    /// index `mask` when given (the fact being proven, in training). `None` when nothing unifies.
    pub fn best_proofs(&self, goals: &[(Vec<usize>, Option<usize>)]) -> Vec<Option<Proof>> {
        let sim = self.similarity_table();
        let mut s = search::Searcher::new(
            &sim,
            self.vocab.len(),
            &self.facts,
            &self.rules,
            self.options.beam,
        );
        goals
            .iter()
            .map(|(g, mask)| {
                let goal: Vec<Option<usize>> = g.iter().map(|&x| Some(x)).collect();
                s.prove(&goal, self.options.depth, *mask, f64::NEG_INFINITY)
                    .into_iter()
                    .next()
            })
            .collect()
    }

    /// The score of each ground goal, `[N]`, differentiable with respect to the embeddings: the
    /// best proof's score, 0 for a goal that nothing unifies with.
    pub fn scores(&self, goals: &[(Vec<usize>, Option<usize>)]) -> Tensor {
        let proofs = self.best_proofs(goals);
        let pairs: Vec<Vec<(usize, usize)>> = proofs
            .iter()
            .map(|p| p.as_ref().map_or_else(Vec::new, |p| p.pairs.clone()))
            .collect();
        let found = Tensor::from_vec(
            proofs
                .iter()
                .map(|p| if p.is_some() { 1.0 } else { 0.0 })
                .collect::<Vec<f64>>(),
            [proofs.len()],
        )
        .to_dtype(self.embeddings.dtype());
        proof_scores(&self.embeddings, &pairs, self.options.mu) * found
    }

    /// The learned rules in readable form, most confident first.
    pub fn rules(&self) -> Vec<ReadRule> {
        let sim = self.similarity_table();
        let n = self.vocab.len();
        let preds = self.vocab.of_kind(SymbolKind::Predicate);
        let mut out: Vec<ReadRule> = self
            .rules
            .iter()
            .map(|r| {
                let mut confidence = 1.0f64;
                let mut name = |p: usize| -> String {
                    if self.vocab.kind(p) != SymbolKind::RuleParameter {
                        return self.vocab.name(p).to_string();
                    }
                    let best = preds
                        .iter()
                        .copied()
                        .max_by(|&a, &b| sim[p * n + a].total_cmp(&sim[p * n + b]));
                    match best {
                        Some(b) => {
                            confidence = confidence.min(sim[p * n + b]);
                            self.vocab.name(b).to_string()
                        }
                        None => self.vocab.name(p).to_string(),
                    }
                };
                let mut atom = |a: &RuleAtom| {
                    let args: Vec<String> = a
                        .args
                        .iter()
                        .map(|t| match *t {
                            Term::Var(v) => r.var_names[v].clone(),
                            Term::Sym(s) => self.vocab.name(s).to_string(),
                        })
                        .collect();
                    format!("{}({})", name(a.predicate), args.join(","))
                };
                let head = atom(&r.head);
                let body: Vec<String> = r.body.iter().map(&mut atom).collect();
                let text = format!("{head} :- {}", body.join(", "));
                ReadRule { confidence, text }
            })
            .collect();
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        out
    }
}
