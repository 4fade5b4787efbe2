//! Shared helpers of the property tests (`props_*.rs`): shape strategies, seeded values, naive
//! reference implementations over row-major `Vec<f64>` data, and gradient checks as proptest
//! results.
//!
//! Shapes come from proptest strategies (so failures shrink to small shapes); values come from a
//! seeded generator whose seed proptest draws, so every failure is reproducible.

#![allow(dead_code)]

use nabla::rand::rngs::StdRng;
use nabla::rand::{RngExt, SeedableRng};
use nabla::testing::{GradCheck, check_grad, check_grad_with, check_grad2};
use nabla::{DType, Tensor};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// What a property body returns.
pub type R = Result<(), TestCaseError>;

/// `cases` proptest cases, or `PROPTEST_CASES` when set (for deeper runs by hand). A failure
/// reports its shrunk shapes and value seed, which reproduce it; nothing is written to the tree.
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

// ----- shapes ------------------------------------------------------------------------------------

/// A shape with rank in `ranks` and every dimension in `1..=max_dim`.
pub fn shape(
    ranks: std::ops::RangeInclusive<usize>,
    max_dim: usize,
) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max_dim, ranks)
}

/// As [`shape`], but about one dimension in ten is 0 (empty tensors).
pub fn shape0(
    ranks: std::ops::RangeInclusive<usize>,
    max_dim: usize,
) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1 => Just(0usize), 9 => 1..=max_dim], ranks)
}

/// `full` with the dimensions flagged in `ones` set to 1 and the first `drop % (rank + 1)` dropped.
fn derive(full: &[usize], ones: &[bool], drop: usize) -> Vec<usize> {
    let drop = drop % (full.len() + 1);
    full.iter()
        .zip(ones)
        .skip(drop)
        .map(|(&d, &o)| if o { 1 } else { d })
        .collect()
}

/// Two broadcast-compatible shapes of rank 0..=4 and dimensions 1..=4: a random shape, from which
/// each side is derived by dropping leading dimensions and setting some dimensions to 1 (so both
/// one-sided and two-sided broadcasting occur), in random order.
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let flags = || prop::collection::vec(prop::bool::weighted(0.3), 4);
    (shape(0..=4, 4), flags(), flags(), 0usize..=4, 0usize..=1).prop_map(
        |(full, oa, ob, da, db)| {
            // at most one side drops leading dimensions: the other keeps the full rank
            (
                derive(&full, &oa, da * db),
                derive(&full, &ob, da * (1 - db)),
            )
        },
    )
}

/// Three broadcast-compatible shapes (as for `where_`).
pub fn broadcast_triple() -> impl Strategy<Value = [Vec<usize>; 3]> {
    let flags = || prop::collection::vec(prop::bool::weighted(0.3), 4);
    (
        shape(0..=4, 4),
        flags(),
        flags(),
        flags(),
        prop::collection::vec(0usize..=4, 3),
    )
        .prop_map(|(full, f0, f1, f2, drops)| {
            [
                derive(&full, &f0, drops[0]),
                derive(&full, &f1, drops[1]),
                derive(&full, &f2, drops[2]),
            ]
        })
}

/// Axes of a rank-`rank` tensor chosen by `pick`, each written as a negative axis where `neg` says
/// so, in reverse order when `rev`.
pub fn axes_from(rank: usize, pick: &[bool], neg: &[bool], rev: bool) -> Vec<isize> {
    let mut a: Vec<isize> = (0..rank)
        .filter(|&i| pick[i])
        .map(|i| {
            if neg[i] {
                i as isize - rank as isize
            } else {
                i as isize
            }
        })
        .collect();
    if rev {
        a.reverse();
    }
    a
}

/// A shape (rank 0..=4) with a random subset of its axes (some negative, in any order) and `keepdim`.
pub fn shape_axes() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, bool)> {
    let flags = || prop::collection::vec(any::<bool>(), 4);
    (
        shape(0..=4, 4),
        flags(),
        flags(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(s, pick, neg, rev, keep)| {
            let a = axes_from(s.len(), &pick, &neg, rev);
            (s, a, keep)
        })
}

/// Normalises axes (negative ones count from the end), sorted.
pub fn norm_axes(axes: &[isize], rank: usize) -> Vec<usize> {
    let mut v: Vec<usize> = axes
        .iter()
        .map(|&a| {
            if a < 0 {
                (a + rank as isize) as usize
            } else {
                a as usize
            }
        })
        .collect();
    v.sort_unstable();
    v
}

// ----- values ------------------------------------------------------------------------------------

pub fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Uniform values in `[lo, hi]` with `|x| >= gap` (use `gap = 0` for none), as an f64 tensor.
pub fn values(r: &mut StdRng, s: &[usize], lo: f64, hi: f64, gap: f64) -> Tensor {
    let v: Vec<f64> = (0..numel(s))
        .map(|_| {
            loop {
                let x = r.random_range(lo..=hi);
                if x.abs() >= gap {
                    break x;
                }
            }
        })
        .collect();
    Tensor::from_vec(v, s)
}

/// Uniform magnitudes in `[lo, hi]` with random signs.
pub fn signed(r: &mut StdRng, s: &[usize], lo: f64, hi: f64) -> Tensor {
    let v: Vec<f64> = (0..numel(s))
        .map(|_| {
            let m = r.random_range(lo..=hi);
            if r.random_bool(0.5) { m } else { -m }
        })
        .collect();
    Tensor::from_vec(v, s)
}

/// Pairwise distinct values (spaced at least 0.06 apart, centred on 0): no ties in max/min.
pub fn distinct(r: &mut StdRng, s: &[usize]) -> Tensor {
    let n = numel(s);
    let mut k: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        k.swap(i, r.random_range(0..=i));
    }
    let v: Vec<f64> = k
        .iter()
        .map(|&k| (k as f64 - n as f64 / 2.0) * 0.1 + r.random_range(-0.02..=0.02))
        .collect();
    Tensor::from_vec(v, s)
}

/// Values on the grid `0.25 k + offset` (|k| <= 8) with a jitter of at most 0.03: two tensors
/// drawn with offsets 0 and 0.125 never come closer than 0.065 (no ties in maximum/minimum).
pub fn grid(r: &mut StdRng, s: &[usize], offset: f64) -> Tensor {
    let v: Vec<f64> = (0..numel(s))
        .map(|_| 0.25 * r.random_range(-8i32..=8) as f64 + offset + r.random_range(-0.03..=0.03))
        .collect();
    Tensor::from_vec(v, s)
}

/// A 0/1 mask.
pub fn mask(r: &mut StdRng, s: &[usize]) -> Tensor {
    let v: Vec<f64> = (0..numel(s))
        .map(|_| if r.random_bool(0.5) { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(v, s)
}

/// The same values as `x` in a non-contiguous layout (every other element of a larger buffer).
pub fn strided(x: &Tensor) -> Tensor {
    if x.rank() == 0 {
        return x.clone();
    }
    let y = Tensor::stack(&[x.zeros_like(), x.clone()], -1).select(-1, 1);
    assert!(
        x.numel() <= 1 || !y.is_contiguous(),
        "strided: {} is contiguous",
        x.shape()
    );
    y
}

// ----- reference implementations -----------------------------------------------------------------

/// Row-major multi-index of flat index `i`.
pub fn unravel(mut i: usize, s: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; s.len()];
    for d in (0..s.len()).rev() {
        idx[d] = i % s[d];
        i /= s[d];
    }
    idx
}

/// Flat row-major index of a multi-index.
pub fn ravel(idx: &[usize], s: &[usize]) -> usize {
    idx.iter().zip(s).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// NumPy broadcasting of two shapes, written out naively.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            assert!(
                da == db || da == 1 || db == 1,
                "not broadcastable: {a:?} {b:?}"
            );
            da.max(db)
        })
        .collect()
}

/// The element of `data` (row-major, shape `s`) that broadcasting places at index `idx` of a
/// shape of rank `idx.len()`.
pub fn bread(data: &[f64], s: &[usize], idx: &[usize]) -> f64 {
    let off = idx.len() - s.len();
    let flat = s.iter().enumerate().fold(0, |acc, (i, &d)| {
        acc * d + if d == 1 { 0 } else { idx[i + off] }
    });
    data[flat]
}

/// `data` of shape `s` broadcast to `to`.
pub fn broadcast_data(data: &[f64], s: &[usize], to: &[usize]) -> Vec<f64> {
    (0..numel(to))
        .map(|i| bread(data, s, &unravel(i, to)))
        .collect()
}

/// Elementwise `f(a, b)` with broadcasting: the output shape and values.
pub fn ref_zip(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> (Vec<usize>, Vec<f64>) {
    let (sa, sb) = (a.dims().to_vec(), b.dims().to_vec());
    let (da, db) = (a.to_vec::<f64>(), b.to_vec::<f64>());
    let s = broadcast_shape(&sa, &sb);
    let v = (0..numel(&s))
        .map(|i| {
            let idx = unravel(i, &s);
            f(bread(&da, &sa, &idx), bread(&db, &sb, &idx))
        })
        .collect();
    (s, v)
}

/// Folds the elements of `data` (shape `s`) over the (normalised) `axes`: output shape and values.
pub fn ref_reduce(
    data: &[f64],
    s: &[usize],
    axes: &[usize],
    keepdim: bool,
    init: f64,
    fold: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let kept: Vec<usize> = s
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let mut out = vec![init; numel(&kept)];
    for (i, &v) in data.iter().enumerate() {
        let mut idx = unravel(i, s);
        for &a in axes {
            idx[a] = 0;
        }
        let o = ravel(&idx, &kept);
        out[o] = fold(out[o], v);
    }
    let shape = if keepdim {
        kept
    } else {
        s.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    (shape, out)
}

/// `erf` by its Maclaurin series (independent of the library's libm call); accurate to ~1e-13 for
/// |x| <= 3.
pub fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    let x2 = x * x;
    for n in 1..200 {
        term *= -x2 / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

// ----- assertions --------------------------------------------------------------------------------

/// `got` has shape `s` and values within `tol · (1 + |want|)` of `want`.
pub fn assert_values(what: &str, got: &Tensor, s: &[usize], want: &[f64], tol: f64) -> R {
    prop_assert_eq!(got.dims(), s, "{}: shape", what);
    let g = got.to_vec::<f64>();
    prop_assert_eq!(g.len(), want.len(), "{}: length", what);
    for (i, (x, y)) in g.iter().zip(want).enumerate() {
        let ok = (x - y).abs() <= tol * (1.0 + y.abs()) || (x.is_nan() && y.is_nan());
        prop_assert!(
            ok,
            "{}: element {} of {:?} is {} but the reference gives {}",
            what,
            i,
            s,
            x,
            y
        );
    }
    Ok(())
}

/// Same shape and values within `tol · (1 + |b|)`.
pub fn assert_same(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> R {
    assert_values(what, a, b.dims(), &b.to_vec::<f64>(), tol)
}

fn describe(inputs: &[Tensor]) -> String {
    inputs
        .iter()
        .map(|x| x.shape().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reverse mode (every element) and forward mode against central differences, for the inputs as
/// given and again in a non-contiguous (strided) layout.
pub fn grads(what: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> R {
    check_grad(&f, inputs)
        .map_err(|e| TestCaseError::fail(format!("{what} at {}: {e}", describe(inputs))))?;
    let s: Vec<Tensor> = inputs.iter().map(strided).collect();
    check_grad(&f, &s)
        .map_err(|e| TestCaseError::fail(format!("{what} (strided) at {}: {e}", describe(inputs))))
}

/// [`grads`] with a larger finite-difference step, for functions that are linear in their inputs
/// but evaluated partly in f32 (where a tiny step drowns in rounding).
pub fn grads_linear_f32(what: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> R {
    let opts = GradCheck {
        eps: 0.25,
        atol: 1e-5,
        rtol: 1e-5,
        ..GradCheck::default()
    };
    check_grad_with(f, inputs, &opts)
        .map_err(|e| TestCaseError::fail(format!("{what} at {}: {e}", describe(inputs))))
}

/// Second order (reverse over reverse, and forward over reverse) against central differences.
pub fn grads2(what: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> R {
    check_grad2(f, inputs).map_err(|e| {
        TestCaseError::fail(format!(
            "{what} (second order) at {}: {e}",
            describe(inputs)
        ))
    })
}

/// First and second order.
pub fn grads12(what: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> R {
    grads(what, &f, inputs)?;
    grads2(what, &f, inputs)
}

/// The message of a panic raised by `f`, or `None` when it returns.
pub fn panic_message<T>(f: impl FnOnce() -> T) -> Option<String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => None,
        Err(e) => Some(
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// `x` converted to f32 and back: the reference inputs of an f32 computation.
pub fn round_f32(x: &Tensor) -> Tensor {
    Tensor::from_vec(x.to_vec::<f32>(), x.shape()).to_dtype(DType::F64)
}
