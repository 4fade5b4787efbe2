//! The neural theorem prover (`nn::ntp`): gradients of unification and of a proof step against
//! finite differences (f64), the proof search against exhaustive enumeration, and the readers.

use nabla::nn::ntp::{
    Prover, ProverOptions, SymbolKind, parse_facts, parse_templates, proof_scores, rbf_kernel,
    rbf_kernel_matrix, unify_with_facts,
};
use nabla::rand::SeedableRng;
use nabla::rand::rngs::StdRng;
use nabla::testing::check_grad;
use nabla::{DType, Tensor};

const MU: f64 = 0.8;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed)) * 0.5
}

#[test]
fn unification_kernel_gradient() {
    let (a, b) = (randn(&[3, 4], 1), randn(&[3, 4], 2));
    check_grad(|x: &[Tensor]| rbf_kernel(&x[0], &x[1], MU), &[a, b]).unwrap();
}

#[test]
fn unification_kernel_matrix_matches_pairs_and_gradient() {
    let (a, b) = (randn(&[3, 4], 3), randn(&[5, 4], 4));
    let m = rbf_kernel_matrix(&a, &b, MU).to_vec::<f64>();
    for i in 0..3 {
        for j in 0..5 {
            let k = rbf_kernel(&a.select(0, i), &b.select(0, j), MU).item();
            assert!(
                (m[i * 5 + j] - k).abs() < 1e-12,
                "{i},{j}: {} vs {k}",
                m[i * 5 + j]
            );
        }
    }
    check_grad(|x: &[Tensor]| rbf_kernel_matrix(&x[0], &x[1], MU), &[a, b]).unwrap();
}

#[test]
fn proof_step_against_all_facts_gradient() {
    // two ground goals p(s, o) against four facts: max over facts of the min of three kernels
    let goals: Vec<Tensor> = (0..3).map(|i| randn(&[2, 3], 10 + i)).collect();
    let facts: Vec<Tensor> = (0..3).map(|i| randn(&[4, 3], 20 + i)).collect();
    let mut inputs = goals.clone();
    inputs.extend(facts);
    let step = |x: &[Tensor]| unify_with_facts(&x[..3], &x[3..], MU).max_axis(1, false);
    assert_eq!(step(&inputs).dims(), &[2]);
    check_grad(step, &inputs).unwrap();
}

#[test]
fn proof_scores_gradient_and_padding() {
    let e = randn(&[6, 3], 5);
    let proofs = vec![vec![(0, 1), (2, 3), (4, 5)], vec![(1, 4)], vec![]];
    let s = proof_scores(&e, &proofs, MU).to_vec::<f64>();
    let k = |a: usize, b: usize| rbf_kernel(&e.select(0, a), &e.select(0, b), MU).item();
    assert!((s[0] - k(0, 1).min(k(2, 3)).min(k(4, 5))).abs() < 1e-12);
    assert!((s[1] - k(1, 4)).abs() < 1e-12);
    assert_eq!(s[2], 1.0);
    check_grad(|x: &[Tensor]| proof_scores(&x[0], &proofs, MU), &[e]).unwrap();
}

const FAMILY: &str = "parent(ann,bob).\nparent(bob,cid).\nparent(cid,dan).\nparent(eve,fay).\n\
                      grandparent(ann,cid).\ngrandparent(bob,dan).\n";

fn family_prover(beam: usize, seed: u64) -> Prover {
    let facts = parse_facts(FAMILY).unwrap();
    let t = parse_templates("1 #1(X, Y) :- #2(X, Z), #2(Z, Y).\n1 #1(X, Y) :- #1(Y, X).").unwrap();
    let opts = ProverOptions {
        dim: 4,
        mu: MU,
        depth: 1,
        beam,
        init_scale: 1.0,
    };
    Prover::new(&facts, &t, &opts, &mut StdRng::seed_from_u64(seed))
}

/// The best score of `goal` by exhaustive enumeration of every proof to depth 1 over the family
/// knowledge base and its two rules (the second rule's `#1` is symbol `r2`).
fn brute_force(p: &Prover, goal: &[usize], mask: usize) -> f64 {
    let sim = p.similarity_table();
    let n = p.vocab().len();
    let k = |a: usize, b: usize| sim[a * n + b];
    let facts: Vec<Vec<usize>> = parse_facts(FAMILY)
        .unwrap()
        .iter()
        .map(|a| p.ground(a).unwrap())
        .collect();
    let params = p.vocab().of_kind(SymbolKind::RuleParameter);
    let (r1h, r1b, r2) = (params[0], params[1], params[2]);
    let live: Vec<&Vec<usize>> = facts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != mask)
        .map(|(_, f)| f)
        .collect();
    let fact_score = |pr: usize, s: usize, o: usize| {
        live.iter()
            .map(|f| k(pr, f[0]).min(k(s, f[1])).min(k(o, f[2])))
            .fold(0.0f64, f64::max)
    };
    let (pr, s, o) = (goal[0], goal[1], goal[2]);
    let mut best = fact_score(pr, s, o);
    // #1(X,Y) :- #2(X,Z), #2(Z,Y): Z binds to the object of the first fact
    for f in &live {
        let first = k(pr, r1h).min(k(r1b, f[0])).min(k(s, f[1]));
        best = best.max(first.min(fact_score(r1b, f[2], o)));
    }
    // #1(X,Y) :- #1(Y,X)
    best = best.max(k(pr, r2).min(fact_score(r2, o, s)));
    best
}

#[test]
fn search_finds_the_best_proof_of_exhaustive_enumeration() {
    for seed in 0..4 {
        // a beam as large as the knowledge base prunes nothing
        let p = family_prover(16, seed);
        let facts = parse_facts(FAMILY).unwrap();
        for (i, f) in facts.iter().enumerate() {
            let g = p.ground(f).unwrap();
            let best = p.best_proofs(&[(g.clone(), Some(i))])[0].clone().unwrap();
            let want = brute_force(&p, &g, i);
            assert!(
                (best.score - want).abs() < 1e-9,
                "seed {seed}, {f}: {} vs {want}",
                best.score
            );
            // the differentiable score of the proof found is its search score
            let s = p.scores(&[(g, Some(i))]).item();
            assert!((s - best.score).abs() < 1e-9);
        }
    }
}

#[test]
fn a_rule_equal_to_the_real_predicates_proves_the_held_out_fact() {
    let mut p = family_prover(4, 0);
    let v = p.vocab().clone();
    let pred = |n: &str| v.get(n, SymbolKind::Predicate).unwrap();
    let params = v.of_kind(SymbolKind::RuleParameter);
    // set #1 := grandparent and #2 := parent in the first rule, far from everything else
    let mut e = p.embeddings.to_vec::<f64>();
    let d = 4;
    for (i, x) in e.iter_mut().enumerate() {
        *x = 10.0 * (i as f64 * 0.7).sin() + (i / d) as f64 * 3.0;
    }
    for (dst, src) in [
        (params[0], pred("grandparent")),
        (params[1], pred("parent")),
    ] {
        for j in 0..d {
            e[dst * d + j] = e[src * d + j];
        }
    }
    p.embeddings = Tensor::from_vec(e, [v.len(), d]).variable();
    let facts = parse_facts(FAMILY).unwrap();
    let g = p.ground(&facts[5]).unwrap(); // grandparent(bob,dan), held out
    let best = p.best_proofs(&[(g, Some(5))])[0].clone().unwrap();
    assert!((best.score - 1.0).abs() < 1e-9, "score {}", best.score);
    assert_eq!(best.rule, Some(0));
    let rules = p.rules();
    assert_eq!(
        rules[0].text,
        "grandparent(X,Y) :- parent(X,Z), parent(Z,Y)"
    );
    assert!((rules[0].confidence - 1.0).abs() < 1e-9);
}

#[test]
fn prover_score_gradient_through_the_best_proof() {
    let p = family_prover(16, 7);
    let facts = parse_facts(FAMILY).unwrap();
    let goals: Vec<(Vec<usize>, Option<usize>)> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (p.ground(f).unwrap(), Some(i)))
        .collect();
    let e = p.embeddings.detach();
    check_grad(
        |x: &[Tensor]| {
            let mut q = p.clone();
            q.embeddings = x[0].clone();
            q.scores(&goals)
        },
        &[e],
    )
    .unwrap();
}

#[test]
fn readers_refuse_bad_lines_with_their_number() {
    let e = parse_facts("p(a,b).\np(a b).\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(parse_facts("p(a,b), q(c).").is_err());
    assert!(parse_facts("p(a,X).").is_err());
    assert!(parse_facts("% comment only\n\np(a,b). % trailing\n").is_ok());
    assert!(parse_templates("#1(X,Y) :- #2(X,Y).").is_err()); // no count
    assert!(parse_templates("0 #1(X,Y) :- #2(X,Y).").is_err());
    assert!(parse_templates("2 #1(X,Y) :- #2(X,Z).").is_err()); // Y not in the body
    assert!(parse_templates("2 #1(X,Y) :- #2(X,X), #3(X,Y).").is_err());
    assert!(parse_templates("2 #1(X,Y) :- #2(X,Z), #3(Z,Y).").is_ok());
}
