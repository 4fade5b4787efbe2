//! Property tests of the reductions, softmax family, cumulative sums and `sum_to`: forward values
//! against naive loops, reverse and forward mode against central finite differences, and second
//! order, over random shapes, random axis subsets (negative axes included) and both `keepdim`s.

mod props_common;

use nabla::rand::RngExt;
use nabla::{DType, Tensor};
use props_common::*;
use proptest::prelude::*;

const CASES: u32 = 256;

/// An op applied to the input and its strided and f32 copies, against `want` (shape `s`).
fn check_values(
    name: &str,
    x: &Tensor,
    op: &dyn Fn(&Tensor) -> Tensor,
    s: &[usize],
    want: &[f64],
) -> R {
    assert_values(name, &op(x), s, want, 1e-12)?;
    assert_values(
        &format!("{name} (strided)"),
        &op(&strided(x)),
        s,
        want,
        1e-12,
    )?;
    let y32 = op(&x.to_dtype(DType::F32));
    prop_assert_eq!(y32.dtype(), DType::F32);
    assert_values(&format!("{name} (f32)"), &y32, s, want, 1e-4)
}

/// A reduction over `axes` given by a fold, checked in values, gradients and second order.
#[allow(clippy::too_many_arguments)]
fn reduction(
    name: &str,
    x: &Tensor,
    axes: &[isize],
    keepdim: bool,
    init: f64,
    fold: fn(f64, f64) -> f64,
    finish: &dyn Fn(f64, usize) -> f64,
    op: &dyn Fn(&Tensor) -> Tensor,
) -> R {
    let s = x.dims().to_vec();
    let ax = norm_axes(axes, s.len());
    let n: usize = ax.iter().map(|&a| s[a]).product();
    let (os, raw) = ref_reduce(&x.to_vec::<f64>(), &s, &ax, keepdim, init, fold);
    let want: Vec<f64> = raw.into_iter().map(|v| finish(v, n)).collect();
    let name = format!("{name} over {axes:?} (keepdim {keepdim}) of {:?}", s);
    check_values(&name, x, op, &os, &want)?;
    grads12(&name, |xs| op(&xs[0]), std::slice::from_ref(x))
}

fn all_axes(rank: usize) -> Vec<isize> {
    (0..rank as isize).collect()
}

fn add(a: f64, b: f64) -> f64 {
    a + b
}

fn mul(a: f64, b: f64) -> f64 {
    a * b
}

fn same(v: f64, _: usize) -> f64 {
    v
}

fn mean(v: f64, n: usize) -> f64 {
    v / n as f64
}

/// Variance or standard deviation of `data` (shape `s`) over `axes`, by two passes.
fn ref_var(
    data: &[f64],
    s: &[usize],
    axes: &[usize],
    keepdim: bool,
    correction: usize,
    sqrt: bool,
) -> (Vec<usize>, Vec<f64>) {
    let n: usize = axes.iter().map(|&a| s[a]).product();
    let (_, sums) = ref_reduce(data, s, axes, true, 0.0, add);
    let kept: Vec<usize> = s
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let mut sq = vec![0.0; sums.len()];
    for (i, &v) in data.iter().enumerate() {
        let mut idx = unravel(i, s);
        for &a in axes {
            idx[a] = 0;
        }
        let o = ravel(&idx, &kept);
        let d = v - sums[o] / n as f64;
        sq[o] += d * d;
    }
    let (os, _) = ref_reduce(data, s, axes, keepdim, 0.0, add);
    let v = sq
        .into_iter()
        .map(|q| q / (n - correction) as f64)
        .map(|v| if sqrt { v.sqrt() } else { v })
        .collect();
    (os, v)
}

/// Applies `f` to every lane of `data` (shape `s`) along `axis`.
fn ref_lanes(data: &[f64], s: &[usize], axis: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut out = vec![0.0; data.len()];
    for i in 0..data.len() {
        let idx = unravel(i, s);
        if idx[axis] != 0 {
            continue;
        }
        let positions: Vec<usize> = (0..s[axis])
            .map(|k| {
                let mut j = idx.clone();
                j[axis] = k;
                ravel(&j, s)
            })
            .collect();
        let lane: Vec<f64> = positions.iter().map(|&p| data[p]).collect();
        for (p, v) in positions.iter().zip(f(&lane)) {
            out[*p] = v;
        }
    }
    out
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn sum_axes((s, axes, keep) in shape_axes(), seed in any::<u64>()) {
        let x = values(&mut rng(seed), &s, -2.0, 2.0, 0.0);
        reduction("sum_axes", &x, &axes, keep, 0.0, add, &same, &|x| x.sum_axes(&axes, keep))?;
        if let [a] = axes[..] {
            reduction("sum_axis", &x, &axes, keep, 0.0, add, &same, &|x| x.sum_axis(a, keep))?;
        }
    }

    #[test]
    fn sum(s in shape(0..=4, 4), seed in any::<u64>()) {
        let x = values(&mut rng(seed), &s, -2.0, 2.0, 0.0);
        reduction("sum", &x, &all_axes(s.len()), false, 0.0, add, &same, &|x| x.sum())?;
    }

    #[test]
    fn mean_axes((s, axes, keep) in shape_axes(), seed in any::<u64>()) {
        let x = values(&mut rng(seed), &s, -2.0, 2.0, 0.0);
        reduction("mean_axes", &x, &axes, keep, 0.0, add, &mean, &|x| x.mean_axes(&axes, keep))?;
        if let [a] = axes[..] {
            reduction("mean_axis", &x, &axes, keep, 0.0, add, &mean, &|x| x.mean_axis(a, keep))?;
        }
        reduction("mean", &x, &all_axes(s.len()), false, 0.0, add, &mean, &|x| x.mean())?;
    }

    /// max and min over axes, on inputs without ties.
    #[test]
    fn max_min_axes((s, axes, keep) in shape_axes(), seed in any::<u64>()) {
        let x = distinct(&mut rng(seed), &s);
        let ninf = f64::NEG_INFINITY;
        reduction("max_axes", &x, &axes, keep, ninf, f64::max, &same, &|x| x.max_axes(&axes, keep))?;
        reduction("min_axes", &x, &axes, keep, -ninf, f64::min, &same, &|x| x.min_axes(&axes, keep))?;
        if let [a] = axes[..] {
            reduction("max_axis", &x, &axes, keep, ninf, f64::max, &same, &|x| x.max_axis(a, keep))?;
            reduction("min_axis", &x, &axes, keep, -ninf, f64::min, &same, &|x| x.min_axis(a, keep))?;
        }
        let all = all_axes(s.len());
        reduction("max", &x, &all, false, ninf, f64::max, &same, &|x| x.max())?;
        reduction("min", &x, &all, false, -ninf, f64::min, &same, &|x| x.min())?;
    }

    /// Ties share the gradient equally (like `torch.amax`).
    #[test]
    fn max_ties_share_gradient(s in shape(1..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        // a coarse grid: ties are frequent
        let v: Vec<f64> = (0..numel(&s)).map(|_| r.random_range(0i32..3) as f64).collect();
        let x = Tensor::from_vec(v.clone(), s.as_slice());
        let g = nabla::grad(|x: &Tensor| x.max_axes([-1], false).sum())(&x);
        let n = s[s.len() - 1];
        let want: Vec<f64> = v
            .chunks(n)
            .flat_map(|lane| {
                let m = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let c = lane.iter().filter(|&&u| u == m).count() as f64;
                lane.iter().map(move |&u| if u == m { 1.0 / c } else { 0.0 })
            })
            .collect();
        assert_values("max tie gradient", &g, &s, &want, 1e-15)?;
    }

    /// Product over axes, on inputs without zeros (twice differentiable there).
    #[test]
    fn prod_axes((s, axes, keep) in shape_axes(), seed in any::<u64>()) {
        let x = signed(&mut rng(seed), &s, 0.6, 1.4);
        reduction("prod_axes", &x, &axes, keep, 1.0, mul, &same, &|x| x.prod_axes(&axes, keep))?;
        reduction("prod", &x, &all_axes(s.len()), false, 1.0, mul, &same, &|x| x.prod())?;
    }

    /// Product over axes with exact zeros present: values and first-order derivatives.
    #[test]
    fn prod_axes_with_zeros((s, axes, keep) in shape_axes(), seed in any::<u64>(), zero_at in any::<prop::sample::Index>()) {
        let mut r = rng(seed);
        let mut v = signed(&mut r, &s, 0.5, 1.5).to_vec::<f64>();
        let n = v.len();
        v[zero_at.index(n)] = 0.0;
        for x in v.iter_mut() {
            if r.random_bool(0.2) {
                *x = 0.0;
            }
        }
        let x = Tensor::from_vec(v, s.as_slice());
        let ax = norm_axes(&axes, s.len());
        let (os, want) = ref_reduce(&x.to_vec::<f64>(), &s, &ax, keep, 1.0, mul);
        let name = format!("prod_axes over {axes:?} with zeros");
        check_values(&name, &x, &|x| x.prod_axes(&axes, keep), &os, &want)?;
        grads(&name, |xs| xs[0].prod_axes(&axes, keep), std::slice::from_ref(&x))?;
        grads("prod with zeros", |xs| xs[0].prod(), std::slice::from_ref(&x))?;
    }

    /// Variance and standard deviation with correction 0 and 1; too few elements panic.
    #[test]
    fn var_std_axes((s, axes, keep) in shape_axes(), seed in any::<u64>()) {
        let x = values(&mut rng(seed), &s, -2.0, 2.0, 0.0);
        let ax = norm_axes(&axes, s.len());
        let n: usize = ax.iter().map(|&a| s[a]).product();
        for correction in [0, 1] {
            if n <= correction {
                let msg = panic_message(|| x.var_axes(&axes, correction, keep)).unwrap_or_default();
                prop_assert!(msg.starts_with("var: "), "var of {} groups with correction {}: {:?}", n, correction, msg);
                continue;
            }
            for sqrt in [false, true] {
                let name = format!("{} over {axes:?} of {s:?} (correction {correction}, keepdim {keep})",
                    if sqrt { "std" } else { "var" });
                let (os, want) = ref_var(&x.to_vec::<f64>(), &s, &ax, keep, correction, sqrt);
                let op = |x: &Tensor| if sqrt { x.std_axes(&axes, correction, keep) } else { x.var_axes(&axes, correction, keep) };
                check_values(&name, &x, &op, &os, &want)?;
                // the standard deviation of a single element is not differentiable (sqrt at 0)
                if !(sqrt && n == 1) {
                    grads12(&name, |xs| op(&xs[0]), std::slice::from_ref(&x))?;
                }
            }
        }
        // over all elements
        for correction in [0, 1] {
            if numel(&s) > correction {
                let all: Vec<usize> = (0..s.len()).collect();
                let (_, want) = ref_var(&x.to_vec::<f64>(), &s, &all, false, correction, false);
                check_values("var", &x, &|x| x.var(correction), &[], &want)?;
            }
        }
    }

    #[test]
    fn logsumexp((s, axes, keep) in shape_axes(), seed in any::<u64>(), shift in prop::sample::select(vec![0.0, 500.0, -500.0])) {
        let x = values(&mut rng(seed), &s, -3.0, 3.0, 0.0);
        let ax = norm_axes(&axes, s.len());
        let (os, sums) = ref_reduce(&x.to_vec::<f64>(), &s, &ax, keep, 0.0, |acc, v| acc + v.exp());
        let want: Vec<f64> = sums.iter().map(|v| v.ln()).collect();
        let name = format!("logsumexp over {axes:?} (keepdim {keep}) of {s:?}");
        check_values(&name, &x, &|x| x.logsumexp(&axes, keep), &os, &want)?;
        grads12(&name, |xs| xs[0].logsumexp(&axes, keep), std::slice::from_ref(&x))?;
        // stable for large magnitudes: logsumexp(x + c) = logsumexp(x) + c
        let shifted: Vec<f64> = want.iter().map(|v| v + shift).collect();
        assert_values(&name, &(&x + shift).logsumexp(&axes, keep), &os, &shifted, 1e-12)?;
    }

    #[test]
    fn norm(s in shape(0..=4, 4), seed in any::<u64>()) {
        let x = signed(&mut rng(seed), &s, 0.1, 2.0);
        let want = x.to_vec::<f64>().iter().map(|v| v * v).sum::<f64>().sqrt();
        check_values("norm", &x, &|x| x.norm(), &[], &[want])?;
        grads12("norm", |xs| xs[0].norm(), std::slice::from_ref(&x))?;
    }

    #[test]
    fn softmax_log_softmax(s in shape(0..=4, 4), axis in -4isize..4, seed in any::<u64>(), shift in prop::sample::select(vec![0.0, 700.0, -700.0])) {
        let rank = s.len().max(1) as isize;
        let axis = axis.rem_euclid(2 * rank) - rank; // in -rank..rank
        let x = values(&mut rng(seed), &s, -3.0, 3.0, 0.0);
        let (a, sl) = if s.is_empty() { (0, vec![1]) } else { (axis.rem_euclid(rank) as usize, s.clone()) };
        let softmax = |lane: &[f64]| {
            let z: f64 = lane.iter().map(|v| v.exp()).sum();
            lane.iter().map(|v| v.exp() / z).collect::<Vec<f64>>()
        };
        let log_softmax = |lane: &[f64]| {
            let z: f64 = lane.iter().map(|v| v.exp()).sum::<f64>().ln();
            lane.iter().map(|v| v - z).collect::<Vec<f64>>()
        };
        let p = ref_lanes(&x.to_vec::<f64>(), &sl, a, softmax);
        let lp = ref_lanes(&x.to_vec::<f64>(), &sl, a, log_softmax);
        check_values(&format!("softmax({axis}) of {s:?}"), &x, &|x| x.softmax(axis), &s, &p)?;
        check_values(&format!("log_softmax({axis}) of {s:?}"), &x, &|x| x.log_softmax(axis), &s, &lp)?;
        grads12("softmax", |xs| xs[0].softmax(axis), std::slice::from_ref(&x))?;
        grads12("log_softmax", |xs| xs[0].log_softmax(axis), std::slice::from_ref(&x))?;
        // invariant to a constant shift, even a huge one
        let xs = &x + shift;
        assert_values("softmax (shifted)", &xs.softmax(axis), &s, &p, 1e-9)?;
        let lp_shifted = xs.log_softmax(axis);
        assert_values("log_softmax (shifted)", &lp_shifted, &s, &lp, 1e-9)?;
    }

    #[test]
    fn cumsum(s in shape(0..=4, 4), axis in -4isize..4, seed in any::<u64>()) {
        let rank = s.len().max(1) as isize;
        let axis = axis.rem_euclid(2 * rank) - rank;
        let x = values(&mut rng(seed), &s, -2.0, 2.0, 0.0);
        let (a, sl) = if s.is_empty() { (0, vec![1]) } else { (axis.rem_euclid(rank) as usize, s.clone()) };
        let fwd = ref_lanes(&x.to_vec::<f64>(), &sl, a, |lane| {
            lane.iter().scan(0.0, |acc, v| { *acc += v; Some(*acc) }).collect()
        });
        let rev = ref_lanes(&x.to_vec::<f64>(), &sl, a, |lane| {
            let mut v: Vec<f64> = lane.iter().rev().scan(0.0, |acc, v| { *acc += v; Some(*acc) }).collect();
            v.reverse();
            v
        });
        check_values(&format!("cumsum({axis}) of {s:?}"), &x, &|x| x.cumsum(axis), &s, &fwd)?;
        check_values(&format!("cumsum_reverse({axis}) of {s:?}"), &x, &|x| x.cumsum_reverse(axis), &s, &rev)?;
        grads12("cumsum", |xs| xs[0].cumsum(axis), std::slice::from_ref(&x))?;
        grads12("cumsum_reverse", |xs| xs[0].cumsum_reverse(axis), std::slice::from_ref(&x))?;
    }

    /// `sum_to` sums broadcast dimensions away: the adjoint of `broadcast_to`.
    #[test]
    fn sum_to((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let full = broadcast_shape(&sa, &sb);
        let x = values(&mut rng(seed), &full, -2.0, 2.0, 0.0);
        for target in [&sa, &sb] {
            let data = x.to_vec::<f64>();
            let mut want = vec![0.0; numel(target)];
            for (i, v) in data.iter().enumerate() {
                let idx = unravel(i, &full);
                let off = full.len() - target.len();
                let t: Vec<usize> = target.iter().enumerate().map(|(k, &d)| if d == 1 { 0 } else { idx[k + off] }).collect();
                want[ravel(&t, target)] += v;
            }
            let to = nabla::Shape::from(target.as_slice());
            check_values(&format!("sum_to {target:?} from {full:?}"), &x, &|x| x.sum_to(&to), target, &want)?;
            grads12("sum_to", |xs| xs[0].sum_to(&to), std::slice::from_ref(&x))?;
            // <broadcast_to(y), x> = <y, sum_to(x)>
            let y = values(&mut rng(seed ^ 1), target, -2.0, 2.0, 0.0);
            let lhs = (y.broadcast_to(full.as_slice()) * &x).sum().item();
            let rhs = (&y * &x.sum_to(&to)).sum().item();
            prop_assert!((lhs - rhs).abs() < 1e-12 * (1.0 + lhs.abs()), "adjoint: {} vs {}", lhs, rhs);
        }
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Inputs large enough for the blocked and multi-threaded sums and the strided reduction.
    #[test]
    fn large_reductions(rows in 1usize..=40, cols in 900usize..=1100, seed in any::<u64>()) {
        let x = values(&mut rng(seed), &[rows, cols], -2.0, 2.0, 0.0);
        let data = x.to_vec::<f64>();
        let s = [rows, cols];
        let total: f64 = data.iter().sum();
        assert_values("large sum", &x.sum(), &[], &[total], 1e-10)?;
        assert_values("large sum (strided)", &x.t().contiguous().t().sum(), &[], &[total], 1e-10)?;
        for axes in [vec![0], vec![1], vec![0, 1]] {
            let (os, want) = ref_reduce(&data, &s, &axes, false, 0.0, |a, b| a + b);
            let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            assert_values("large sum_axes", &x.sum_axes(&ax, false), &os, &want, 1e-10)?;
            let (os, want) = ref_reduce(&data, &s, &axes, false, f64::NEG_INFINITY, f64::max);
            assert_values("large max_axes", &x.max_axes(&ax, false), &os, &want, 0.0)?;
        }
        // d/dx Σ softmax(x)² = 2 p (p − Σ p²) lane by lane, on the large (threaded) path
        let g = nabla::grad(|x: &Tensor| x.softmax(-1).square().sum())(&x);
        prop_assert_eq!(g.dims(), &s[..]);
        let g = g.to_vec::<f64>();
        for (lane, gl) in data.chunks(cols).zip(g.chunks(cols)) {
            let m = lane.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = lane.iter().map(|v| (v - m).exp()).sum();
            let p: Vec<f64> = lane.iter().map(|v| (v - m).exp() / z).collect();
            let p2: f64 = p.iter().map(|p| p * p).sum();
            for (pi, gi) in p.iter().zip(gl) {
                let want = 2.0 * pi * (pi - p2);
                prop_assert!((gi - want).abs() < 1e-12 + 1e-9 * want.abs(), "softmax grad {} vs {}", gi, want);
            }
        }
        let c = x.cumsum(-1).to_vec::<f64>();
        let last: Vec<f64> = c.chunks(cols).map(|lane| lane[cols - 1]).collect();
        let (_, want) = ref_reduce(&data, &s, &[1], false, 0.0, |a, b| a + b);
        for (a, b) in last.iter().zip(&want) {
            prop_assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()));
        }
    }
}
