//! The Differentiable Neural Computer: a finite-difference gradient test (f64) of each memory
//! operation, dense and sparse, values against direct formulas, and the whole model.

use nabla::nn::Module;
use nabla::nn::dnc::*;
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::check_grad;
use nabla::{DType, Tensor};

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed))
}
fn unit(shape: &[usize], seed: u64) -> Tensor {
    // in (0.05, 0.95), away from the ends
    Tensor::rand(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed)) * 0.9 + 0.05
}
fn simplex(shape: &[usize], seed: u64) -> Tensor {
    rnd(shape, seed).softmax(-1)
}

#[test]
fn grad_content_weighting() {
    check_grad(
        |x| content_weighting(&x[0], &x[1], &oneplus(&x[2])),
        &[rnd(&[2, 5, 3], 1), rnd(&[2, 2, 3], 2), rnd(&[2, 2], 3)],
    )
    .unwrap();
}

#[test]
fn grad_retention_and_usage() {
    check_grad(
        |x| retention(&x[0], &x[1]),
        &[unit(&[2, 3], 1), simplex(&[2, 3, 5], 2)],
    )
    .unwrap();
    check_grad(
        |x| usage(&x[0], &x[1], &x[2]),
        &[unit(&[2, 5], 1), simplex(&[2, 5], 2), unit(&[2, 5], 3)],
    )
    .unwrap();
}

#[test]
fn grad_allocation_weighting() {
    // distinct usages, so the (constant) order does not change under the perturbation
    let u = Tensor::from_vec(
        vec![0.9f64, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.05],
        [2, 5],
    );
    check_grad(|x| allocation_weighting(&x[0]), &[u]).unwrap();
}

#[test]
fn allocation_matches_the_formula() {
    let u = [0.9f64, 0.1, 0.5, 0.7];
    let a = allocation_weighting(&Tensor::from_vec(u.to_vec(), [1, 4])).to_vec::<f64>();
    // order: 1 (0.1), 2 (0.5), 3 (0.7), 0 (0.9)
    let want = [
        (1.0 - 0.9) * 0.1 * 0.5 * 0.7,
        1.0 - 0.1,
        (1.0 - 0.5) * 0.1,
        (1.0 - 0.7) * 0.1 * 0.5,
    ];
    for (g, w) in a.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{a:?} vs {want:?}");
    }
}

#[test]
fn grad_write_weighting_and_memory() {
    check_grad(
        |x| write_weighting(&x[0], &x[1], &x[2], &x[3]),
        &[
            simplex(&[2, 5], 1),
            simplex(&[2, 5], 2),
            unit(&[2, 1], 3),
            unit(&[2, 1], 4),
        ],
    )
    .unwrap();
    check_grad(
        |x| write_memory(&x[0], &x[1], &x[2], &x[3]),
        &[
            rnd(&[2, 5, 3], 1),
            simplex(&[2, 5], 2),
            unit(&[2, 3], 3),
            rnd(&[2, 3], 4),
        ],
    )
    .unwrap();
}

#[test]
fn grad_precedence_and_links() {
    check_grad(
        |x| precedence(&x[0], &x[1]),
        &[simplex(&[2, 5], 1), simplex(&[2, 5], 2)],
    )
    .unwrap();
    check_grad(
        |x| link_matrix(&x[0], &x[1], &x[2]),
        &[
            unit(&[2, 4, 4], 1) * 0.2,
            simplex(&[2, 4], 2),
            simplex(&[2, 4], 3),
        ],
    )
    .unwrap();
}

#[test]
fn links_follow_the_write_order() {
    // write slot 2, then slot 0: the link 0 <- 2 (L[0, 2]) becomes 1
    let l = Tensor::zeros([1, 3, 3], DType::F64);
    let p = Tensor::zeros([1, 3], DType::F64);
    let w1 = Tensor::from_vec(vec![0.0f64, 0.0, 1.0], [1, 3]);
    let l = link_matrix(&l, &w1, &p);
    let p = precedence(&p, &w1);
    let w2 = Tensor::from_vec(vec![1.0f64, 0.0, 0.0], [1, 3]);
    let l = link_matrix(&l, &w2, &p).to_vec::<f64>();
    assert_eq!(l, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn grad_directional_and_read() {
    check_grad(
        |x| {
            let (f, b) = directional_weightings(&x[0], &x[1]);
            f * 2.0 + b
        },
        &[unit(&[2, 4, 4], 1) * 0.2, simplex(&[2, 3, 4], 2)],
    )
    .unwrap();
    check_grad(
        |x| read_weighting(&x[0], &x[1], &x[2], &x[3].softmax(2)),
        &[
            simplex(&[2, 3, 4], 1),
            simplex(&[2, 3, 4], 2),
            simplex(&[2, 3, 4], 3),
            rnd(&[2, 3, 3], 4),
        ],
    )
    .unwrap();
    check_grad(
        |x| read_memory(&x[0], &x[1]),
        &[rnd(&[2, 4, 3], 1), simplex(&[2, 2, 4], 2)],
    )
    .unwrap();
}

#[test]
fn sparse_content_is_the_softmax_over_the_k_most_similar_slots() {
    let (m, k, s) = (
        rnd(&[2, 7, 3], 1),
        rnd(&[2, 2, 3], 2),
        oneplus(&rnd(&[2, 2], 3)),
    );
    let dense = content_weighting(&m, &k, &s).to_vec::<f64>();
    let sparse = sparse_content_weighting(&m, &k, &s, 3).to_vec::<f64>();
    for (d, row) in dense.chunks(7).zip(sparse.chunks(7)) {
        // the dense weights of the 3 most similar slots, renormalised to sum to 1; zero elsewhere
        let mut top = d.to_vec();
        top.sort_by(|a, b| b.total_cmp(a));
        let kept: f64 = top[..3].iter().sum();
        for (a, b) in d.iter().zip(row) {
            assert!(if *a >= top[2] {
                (a / kept - b).abs() < 1e-12
            } else {
                *b == 0.0
            });
        }
    }
    // with K = N it is the dense weighting
    let all = sparse_content_weighting(&m, &k, &s, 7).to_vec::<f64>();
    assert!(dense.iter().zip(&all).all(|(a, b)| (a - b).abs() < 1e-12));
}

#[test]
fn sparse_content_ranks_empty_slots_after_written_ones() {
    // slots 1, 3 and 4 hold words, slot 6 a word of squared norm 1e-8 (below ε: empty); the key
    // points away from slot 3 (similarity -0.98), yet slot 3 is chosen before the empty slots
    // (similarity 0); with K = 4 the last place goes to the first empty slot, 0
    #[rustfmt::skip]
    let m = Tensor::from_vec(
        vec![0.0f64, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.2, 0.5, 0.5, 0.0, 0.0, 1e-4, 0.0],
        [1, 7, 2],
    );
    let k = Tensor::from_vec(vec![1.0f64, 0.0], [1, 1, 2]);
    let s = Tensor::from_vec(vec![2.0f64], [1, 1]);
    let w = sparse_content_weighting(&m, &k, &s, 4).to_vec::<f64>();
    let sim = cosine_similarity(&m, &k).to_vec::<f64>();
    let chosen = [0, 1, 3, 4];
    let z: f64 = chosen.iter().map(|&i| (2.0 * sim[i]).exp()).sum();
    for (i, wi) in w.iter().enumerate() {
        let want = if chosen.contains(&i) {
            (2.0 * sim[i]).exp() / z
        } else {
            0.0
        };
        assert!((wi - want).abs() < 1e-12, "slot {i}: {w:?}");
    }
    assert!(w[3] > 0.0 && sim[3] < -0.9);
    // with at least K written slots no empty slot is chosen, whatever the similarities
    let w2 = sparse_content_weighting(&m, &k.neg(), &s, 3).to_vec::<f64>();
    assert!(
        w2.iter()
            .enumerate()
            .all(|(i, &x)| (x > 0.0) == [1, 3, 4].contains(&i)),
        "{w2:?}"
    );
}

#[test]
fn grad_sparse_content_with_empty_slots() {
    // rows 1 and 4 of the first batch and row 0 of the second are empty: they are not chosen (K
    // = 3 of the 5 or 6 written rows) and stay empty under the finite-difference perturbation
    let mut m = rnd(&[2, 7, 3], 1).to_vec::<f64>();
    for row in [1, 4, 7] {
        m[row * 3..row * 3 + 3].fill(0.0);
    }
    let m = Tensor::from_vec(m, [2, 7, 3]);
    check_grad(
        |x| sparse_content_weighting(&x[0], &x[1], &oneplus(&x[2]), 3),
        &[m, rnd(&[2, 2, 3], 2), rnd(&[2, 2], 3)],
    )
    .unwrap();
}

#[test]
fn grad_sparse_content_and_allocation() {
    check_grad(
        |x| sparse_content_weighting(&x[0], &x[1], &oneplus(&x[2]), 3),
        &[rnd(&[2, 7, 3], 1), rnd(&[2, 2, 3], 2), rnd(&[2, 2], 3)],
    )
    .unwrap();
    let u = Tensor::from_vec(
        vec![0.9f64, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.05],
        [2, 5],
    );
    check_grad(
        |x| sparse_allocation_weighting(&x[0], 3),
        std::slice::from_ref(&u),
    )
    .unwrap();
    // among the K least used slots the sparse allocation equals the dense one
    let (d, s) = (
        allocation_weighting(&u).to_vec::<f64>(),
        sparse_allocation_weighting(&u, 3).to_vec::<f64>(),
    );
    for (a, b) in d.iter().zip(&s) {
        assert!(*b == 0.0 || (a - b).abs() < 1e-12, "{d:?} vs {s:?}");
    }
    check_grad(
        |x| keep_top_k(&x[0], 2),
        &[Tensor::from_vec(
            vec![0.3f64, 0.9, 0.1, 0.5, 0.2, 0.8, 0.6, 0.4],
            [2, 4],
        )],
    )
    .unwrap();
}

/// Sparse links built by a few writes, with K large enough to hold every link, equal the dense ones.
fn sparse_and_dense_links(k: usize) -> (SparseLinks, Tensor, Tensor) {
    let n = 6;
    let mut sl = SparseLinks::empty(2, n, k, DType::F64);
    let mut dl = Tensor::zeros([2, n, n], DType::F64);
    let mut p = Tensor::zeros([2, n], DType::F64);
    for (t, slot) in [1usize, 4, 2].into_iter().enumerate() {
        // a write weighting concentrated on one slot per step, a little on one more
        let mut w = vec![0.0f64; 2 * n];
        w[slot] = 0.8;
        w[(slot + 3) % n] = 0.1;
        w[n + (slot + t) % n] = 0.7;
        let w = Tensor::from_vec(w, [2, n]);
        sl = sl.update(&w, &p);
        dl = link_matrix(&dl, &w, &p);
        p = precedence(&p, &w);
    }
    (sl, dl, p)
}

#[test]
fn sparse_links_match_dense_when_k_holds_them() {
    let (sl, dl, _) = sparse_and_dense_links(5);
    let (a, b) = (sl.to_dense().to_vec::<f64>(), dl.to_vec::<f64>());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-12, "{a:?}\nvs\n{b:?}");
    }
    let w = simplex(&[2, 3, 6], 9);
    let (fs, bs) = sl.directional_weightings(&w);
    let (fd, bd) = directional_weightings(&dl, &w);
    for (x, y) in [(fs, fd), (bs, bd)] {
        let (x, y) = (x.to_vec::<f64>(), y.to_vec::<f64>());
        for (u, v) in x.iter().zip(&y) {
            assert!((u - v).abs() < 1e-12);
        }
    }
    // with K = 2 each row keeps at most two entries
    let (small, _, _) = sparse_and_dense_links(2);
    assert_eq!(small.size(), (6, 2));
}

#[test]
fn grad_sparse_links() {
    let (sl, _, p) = sparse_and_dense_links(3);
    let idx = sl.idx.clone();
    // entries that are all non-zero and distinct, so that the (constant) choice of the K kept per
    // row has no ties for the finite differences to cross
    let val = &sl.val + unit(&[2, 6, 3], 11) * 0.1;
    let w = Tensor::from_vec(
        vec![
            0.05f64, 0.6, 0.1, 0.02, 0.15, 0.03, 0.3, 0.04, 0.02, 0.5, 0.06, 0.01,
        ],
        [2, 6],
    );
    check_grad(
        |x| {
            let l = SparseLinks {
                idx: idx.clone(),
                val: x[0].clone(),
            };
            l.update(&x[1], &x[2]).to_dense()
        },
        &[val.clone(), w.clone(), p.clone()],
    )
    .unwrap();
    check_grad(
        |x| {
            let l = SparseLinks {
                idx: idx.clone(),
                val: x[0].clone(),
            };
            let (f, b) = l.directional_weightings(&x[1]);
            f * 2.0 + b
        },
        &[val, simplex(&[2, 2, 6], 5)],
    )
    .unwrap();
}

/// The sparse link update computed densely: `ŵ`, `p̂` keep the `k` largest entries, the update of
/// [`link_matrix`] with the outer product `ŵ p̂ᵀ`, then an entry survives only if it is among the
/// `k` largest in magnitude of its row and of its column. `[n, n]` row-major, one batch row:
/// `(pruned, before pruning)`.
fn dense_sparse_update(
    prev: &[f64],
    w: &[f64],
    p: &[f64],
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let top = |v: &[f64]| {
        let mut o: Vec<usize> = (0..n).collect();
        o.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
        let mut t = vec![0.0; n];
        for &i in &o[..k] {
            t[i] = v[i];
        }
        t
    };
    let (wt, pt) = (top(w), top(p));
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                l[i * n + j] = (1.0 - w[i] - w[j]) * prev[i * n + j] + wt[i] * pt[j];
            }
        }
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let v = l[i * n + j].abs();
            let above_in_row = (0..n).filter(|&c| l[i * n + c].abs() > v).count();
            let above_in_col = (0..n).filter(|&r| l[r * n + j].abs() > v).count();
            if v > 0.0 && above_in_row < k && above_in_col < k {
                out[i * n + j] = l[i * n + j];
            }
        }
    }
    (out, l)
}

#[test]
fn sparse_links_keep_k_per_row_and_per_column() {
    let (b, n, k) = (2, 8, 2);
    let mut sl = SparseLinks::empty(b, n, k, DType::F64);
    let mut p = Tensor::zeros([b, n], DType::F64);
    let mut pruned_cols = 0;
    for t in 0..6 {
        // dense write weightings (every slot a little), so that the pruning has work to do
        let w = unit(&[b, n], 40 + t).softmax(-1) * 0.9;
        let prev = sl.to_dense().to_vec::<f64>();
        sl = sl.update(&w, &p);
        let got = sl.to_dense().to_vec::<f64>();
        let (wv, pv) = (w.to_vec::<f64>(), p.to_vec::<f64>());
        for bi in 0..b {
            let r = bi * n..(bi + 1) * n;
            let (want, unpruned) = dense_sparse_update(
                &prev[bi * n * n..(bi + 1) * n * n],
                &wv[r.clone()],
                &pv[r],
                n,
                k,
            );
            let got = &got[bi * n * n..(bi + 1) * n * n];
            for (x, y) in got.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "step {t}:\n{got:?}\nvs\n{want:?}");
            }
            for i in 0..n {
                let in_row = (0..n).filter(|&j| got[i * n + j] != 0.0).count();
                let in_col = (0..n).filter(|&j| got[j * n + i] != 0.0).count();
                assert!(in_row <= k && in_col <= k, "step {t}: {got:?}");
            }
            // columns that hold more than K entries before the pruning
            pruned_cols += (0..n)
                .filter(|&j| (0..n).filter(|&i| unpruned[i * n + j] != 0.0).count() > k)
                .count();
        }
        p = precedence(&p, &w);
    }
    assert!(pruned_cols > 0, "the column rule was never exercised");
}

#[test]
fn grad_sparse_links_with_column_pruning() {
    // links after a few dense writes, K = 2 of N = 7: both the row and the column rule prune
    let (b, n, k) = (1, 7, 2);
    let mut sl = SparseLinks::empty(b, n, k, DType::F64);
    let mut p = Tensor::zeros([b, n], DType::F64);
    for t in 0..4 {
        let w = unit(&[b, n], 60 + t).softmax(-1) * 0.9;
        sl = sl.update(&w, &p);
        p = precedence(&p, &w);
    }
    let idx = sl.idx.clone();
    let val = &sl.val + unit(&[b, n, k], 12) * 0.05;
    let w = unit(&[b, n], 70).softmax(-1) * 0.9;
    check_grad(
        |x| {
            let l = SparseLinks {
                idx: idx.clone(),
                val: x[0].clone(),
            };
            l.update(&x[1], &x[2]).to_dense()
        },
        &[val, w, p],
    )
    .unwrap();
}

fn config(sparse: Option<usize>) -> DncConfig {
    DncConfig {
        input_size: 3,
        output_size: 2,
        hidden_size: 4,
        memory_size: 5,
        word_size: 3,
        read_heads: 2,
        sparse,
        dtype: DType::F64,
    }
}

#[test]
fn grad_whole_dnc_dense_and_sparse() {
    for sparse in [None, Some(3)] {
        let dnc = Dnc::new(config(sparse), &mut StdRng::seed_from_u64(4));
        let x = rnd(&[2, 3, 3], 7);
        check_grad(|x| dnc.forward_sequence(&x[0], None).0, &[x]).unwrap();
    }
}

#[test]
fn grad_sparse_dnc_interface_weights_over_a_long_sequence() {
    // the interface layer drives every memory operation; over 12 steps the sparse selections
    // (top-K content, allocation among the K least used, K-sparse reads, pruned links) change
    // from step to step, and the gradient must still carry through the values they keep
    let cfg = DncConfig {
        memory_size: 8,
        read_heads: 1,
        ..config(Some(3))
    };
    let x = rnd(&[2, 12, 3], 11);
    let w0 = Dnc::new(cfg, &mut StdRng::seed_from_u64(5))
        .interface
        .weight
        .detach();
    check_grad(
        |w| {
            let mut dnc = Dnc::new(cfg, &mut StdRng::seed_from_u64(5));
            dnc.interface.weight = w[0].clone();
            dnc.forward_sequence(&x, None).0
        },
        &[w0 * 3.0],
    )
    .unwrap();
}

#[test]
fn dnc_shapes_parameters_and_interface() {
    let dnc = Dnc::new(config(None), &mut StdRng::seed_from_u64(0));
    assert_eq!(config(None).interface_size(), 3 * 2 + 9 + 10 + 3);
    let names: Vec<String> = dnc.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"controller.weight_ih".to_string()),
        "{names:?}"
    );
    let (y, states) = dnc.forward_sequence(&rnd(&[2, 4, 3], 1), None);
    assert_eq!(y.dims(), &[2, 4, 2]);
    let s = states.last().unwrap();
    // weightings stay (sub-)distributions
    for w in [
        s.write_weights.sum_axis(1, false),
        s.read_weights.sum_axis(2, false),
    ] {
        assert!(
            w.to_vec::<f64>()
                .iter()
                .all(|&v| (-1e-9..=1.0 + 1e-9).contains(&v))
        );
    }
    let u = s.usage.to_vec::<f64>();
    assert!(u.iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
#[should_panic(expected = "split_interface")]
fn interface_of_the_wrong_size_panics_with_the_op_name() {
    split_interface(&Tensor::zeros([2, 7], DType::F64), 2, 3);
}
