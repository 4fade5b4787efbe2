//! Backward chaining over a table of symbol similarities: finds, for each goal, the proof of
//! highest score (the minimum of its unification scores) to a fixed depth, keeping the `beam` best
//! partial proofs after each body atom and the `beam` best facts per sub-goal (top-k pruning).
//!
//! The search reads similarities from a precomputed `S x S` table and records no gradient; the
//! proofs it returns are then scored again, differentiably, by
//! [`proof_scores`](super::proof_scores). Since the gradient of a maximum flows only to its
//! argument of highest value, this gives the gradient of the max over the explored proofs.

use super::kb::{Rule, Term};
use std::collections::HashMap;

/// A proof of a goal.
#[derive(Clone, Debug, PartialEq)]
pub struct Proof {
    /// Its score: the minimum similarity over its unifications (1 when there are none).
    pub score: f64,
    /// The unifications it made, as pairs of symbols.
    pub pairs: Vec<(usize, usize)>,
    /// The symbol bound to each argument of the goal.
    pub binding: Vec<usize>,
    /// The fact it used, when it is a single fact.
    pub fact: Option<usize>,
    /// The rule it applied first, when it is not a fact.
    pub rule: Option<usize>,
}

/// A goal: predicate then arguments, `None` for an unbound variable.
type Goal = Vec<Option<usize>>;

/// Sorts by score, highest first (stable: ties keep their order) and keeps `k`.
fn keep_best(v: &mut Vec<Proof>, k: usize) {
    v.sort_by(|a, b| b.score.total_cmp(&a.score));
    v.truncate(k);
}

/// The search state over one similarity table.
pub(super) struct Searcher<'a> {
    /// Similarity of symbols `i` and `j` at `i * n + j`.
    pub sim: &'a [f64],
    /// Number of symbols.
    pub n: usize,
    /// Facts: predicate then arguments.
    pub facts: &'a [Vec<usize>],
    /// Rules.
    pub rules: &'a [Rule],
    /// Partial proofs kept after each body atom, and facts kept per sub-goal.
    pub beam: usize,
    /// The best `beam + 1` facts of each goal seen (the extra one replaces a masked fact).
    memo: HashMap<Goal, Vec<Proof>>,
}

impl<'a> Searcher<'a> {
    pub(super) fn new(
        sim: &'a [f64],
        n: usize,
        facts: &'a [Vec<usize>],
        rules: &'a [Rule],
        beam: usize,
    ) -> Searcher<'a> {
        Searcher {
            sim,
            n,
            facts,
            rules,
            beam: beam.max(1),
            memo: HashMap::new(),
        }
    }

    fn s(&self, a: usize, b: usize) -> f64 {
        self.sim[a * self.n + b]
    }

    /// The best facts unifying with `goal`, without fact `mask`.
    fn match_facts(&mut self, goal: &Goal, mask: Option<usize>) -> Vec<Proof> {
        if !self.memo.contains_key(goal) {
            let p = goal[0].expect("a goal's predicate is bound");
            let mut cand: Vec<(f64, usize)> = Vec::new();
            for (fi, f) in self.facts.iter().enumerate() {
                if f.len() != goal.len() {
                    continue;
                }
                let mut s = self.s(p, f[0]);
                for (g, &c) in goal[1..].iter().zip(&f[1..]) {
                    if let Some(a) = *g {
                        s = s.min(self.s(a, c));
                    }
                }
                cand.push((s, fi));
            }
            let keep = (self.beam + 1).min(cand.len());
            let by = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            if keep > 0 && keep < cand.len() {
                cand.select_nth_unstable_by(keep - 1, by);
                cand.truncate(keep);
            }
            cand.sort_by(by);
            let proofs = cand
                .into_iter()
                .map(|(score, fi)| {
                    let f = &self.facts[fi];
                    let mut pairs = vec![(p, f[0])];
                    for (g, &c) in goal[1..].iter().zip(&f[1..]) {
                        if let Some(a) = *g {
                            pairs.push((a, c));
                        }
                    }
                    Proof {
                        score,
                        pairs,
                        binding: f[1..].to_vec(),
                        fact: Some(fi),
                        rule: None,
                    }
                })
                .collect();
            self.memo.insert(goal.clone(), proofs);
        }
        let mut out: Vec<Proof> = self.memo[goal]
            .iter()
            .filter(|p| mask.is_none() || p.fact != mask)
            .cloned()
            .collect();
        // a ground goal binds nothing: only its best fact can matter to a maximum
        let ground = goal.iter().all(Option::is_some);
        out.truncate(if ground { 1 } else { self.beam });
        out
    }

    /// The best proofs of `goal` by one application of rule `ri`, its body proven to `depth - 1`.
    fn apply_rule(
        &mut self,
        ri: usize,
        goal: &Goal,
        depth: usize,
        mask: Option<usize>,
        floor: f64,
    ) -> Vec<Proof> {
        let rules = self.rules;
        let rule = &rules[ri];
        let p = goal[0].expect("a goal's predicate is bound");
        let mut pairs = vec![(p, rule.head.predicate)];
        let mut score = self.s(p, rule.head.predicate);
        let mut subst: Vec<Option<usize>> = vec![None; rule.num_vars];
        for (t, g) in rule.head.args.iter().zip(&goal[1..]) {
            match (*t, *g) {
                (Term::Var(v), Some(a)) => match subst[v] {
                    Some(b) => {
                        score = score.min(self.s(a, b));
                        pairs.push((a, b));
                    }
                    None => subst[v] = Some(a),
                },
                (Term::Sym(s), Some(a)) => {
                    score = score.min(self.s(a, s));
                    pairs.push((a, s));
                }
                (_, None) => {}
            }
        }
        if score <= floor {
            return Vec::new();
        }
        let mut states = vec![(score, pairs, subst)];
        for ai in 0..rule.body.len() {
            let atom = &rule.body[ai];
            let mut next = Vec::new();
            for (score, pairs, subst) in &states {
                let mut sub: Goal = vec![Some(atom.predicate)];
                sub.extend(atom.args.iter().map(|t| match *t {
                    Term::Sym(s) => Some(s),
                    Term::Var(v) => subst[v],
                }));
                for q in self.prove(&sub, depth - 1, mask, floor) {
                    let mut s2 = subst.clone();
                    for (t, &b) in atom.args.iter().zip(&q.binding) {
                        if let Term::Var(v) = *t {
                            s2[v].get_or_insert(b);
                        }
                    }
                    let mut p2 = pairs.clone();
                    p2.extend_from_slice(&q.pairs);
                    if score.min(q.score) > floor {
                        next.push((score.min(q.score), p2, s2));
                    }
                }
            }
            next.sort_by(|a, b| b.0.total_cmp(&a.0));
            next.truncate(self.beam);
            states = next;
        }
        states
            .into_iter()
            .filter_map(|(score, pairs, subst)| {
                let binding = rule
                    .head
                    .args
                    .iter()
                    .zip(&goal[1..])
                    .map(|(t, g)| match (*g, *t) {
                        (Some(a), _) => Some(a),
                        (None, Term::Sym(s)) => Some(s),
                        (None, Term::Var(v)) => subst[v],
                    })
                    .collect::<Option<Vec<usize>>>()?;
                Some(Proof {
                    score,
                    pairs,
                    binding,
                    fact: None,
                    rule: Some(ri),
                })
            })
            .collect()
    }

    /// The `beam` best proofs of `goal` to `depth` rule applications, without fact `mask`,
    /// among those scoring above `floor` (a proof that cannot beat a known one is not explored:
    /// scores only decrease along a proof). A ground goal gets only its best proof, as the others
    /// cannot change a maximum.
    pub(super) fn prove(
        &mut self,
        goal: &Goal,
        depth: usize,
        mask: Option<usize>,
        floor: f64,
    ) -> Vec<Proof> {
        let mut out = self.match_facts(goal, mask);
        out.retain(|p| p.score > floor);
        if depth > 0 {
            let ground = goal.iter().all(Option::is_some);
            for ri in 0..self.rules.len() {
                if self.rules[ri].head.args.len() + 1 == goal.len() {
                    let best = if ground {
                        out.iter().map(|p| p.score).fold(floor, f64::max)
                    } else {
                        floor
                    };
                    out.extend(self.apply_rule(ri, goal, depth, mask, best));
                }
            }
            keep_best(&mut out, if ground { 1 } else { self.beam });
        }
        out
    }
}
