//! Property tests of convolution and pooling: values against direct loops over random small shapes
//! and options (stride, padding, dilation, groups; strided and f32 inputs too), and derivatives
//! against central finite differences (reverse mode on every element, forward mode, second order).

use nabla::rand::{RngExt, SeedableRng};
use nabla::testing::{check_grad, check_grad2};
use nabla::{Conv1dOpts, Conv2dOpts, DType, Tensor};
use proptest::prelude::*;

type R = Result<(), TestCaseError>;

/// Direct 2-d convolution by loops: input `[n, c_in, h, w]`, weight `[c_out, c_in / g, kh, kw]`.
fn naive_conv2d(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    b: Option<&[f64]>,
    o: Conv2dOpts,
) -> (Vec<f64>, [usize; 4]) {
    let [n, c_in, h, wi] = xd;
    let [c_out, cg, kh, kw] = wd;
    let ho = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
    let wo = (wi + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
    let og = c_out / o.groups;
    let mut y = vec![0.0; n * c_out * ho * wo];
    for ni in 0..n {
        for oc in 0..c_out {
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut acc = b.map_or(0.0, |b| b[oc]);
                    for ci in 0..cg {
                        let c = (oc / og) * cg + ci;
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let ih = (oh * o.stride[0] + ki * o.dilation[0]) as isize
                                    - o.padding[0] as isize;
                                let iw = (ow * o.stride[1] + kj * o.dilation[1]) as isize
                                    - o.padding[1] as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= wi as isize {
                                    continue;
                                }
                                acc += w[((oc * cg + ci) * kh + ki) * kw + kj]
                                    * x[((ni * c_in + c) * h + ih as usize) * wi + iw as usize];
                            }
                        }
                    }
                    y[((ni * c_out + oc) * ho + oh) * wo + ow] = acc;
                }
            }
        }
    }
    (y, [n, c_out, ho, wo])
}

/// Direct pooling by loops (max with −∞ padding, or average counting the zero padding).
fn naive_pool(
    x: &[f64],
    xd: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    max: bool,
) -> (Vec<f64>, [usize; 4]) {
    let [n, c, h, w] = xd;
    let ho = (h + 2 * p[0] - k[0]) / s[0] + 1;
    let wo = (w + 2 * p[1] - k[1]) / s[1] + 1;
    let mut y = Vec::with_capacity(n * c * ho * wo);
    for plane in 0..n * c {
        for oh in 0..ho {
            for ow in 0..wo {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for ki in 0..k[0] {
                    for kj in 0..k[1] {
                        let ih = (oh * s[0] + ki) as isize - p[0] as isize;
                        let iw = (ow * s[1] + kj) as isize - p[1] as isize;
                        let v = if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                            if max { f64::NEG_INFINITY } else { 0.0 }
                        } else {
                            x[(plane * h + ih as usize) * w + iw as usize]
                        };
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                y.push(if max { acc } else { acc / (k[0] * k[1]) as f64 });
            }
        }
    }
    (y, [n, c, ho, wo])
}

fn assert_close(what: &str, got: &Tensor, dims: &[usize], want: &[f64], tol: f64) -> R {
    prop_assert_eq!(got.dims(), dims, "{}: shape", what);
    for (i, (a, b)) in got.to_vec::<f64>().iter().zip(want).enumerate() {
        prop_assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{}: element {}: {} vs {}",
            what,
            i,
            a,
            b
        );
    }
    Ok(())
}

/// The same values in a non-contiguous layout (a permuted copy, permuted back).
fn strided(x: &Tensor) -> Tensor {
    let r = x.rank();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.reverse();
    x.permute(&perm).contiguous().permute(&perm)
}

/// A random convolution: shapes, options and a seed for the values.
#[derive(Debug, Clone)]
struct ConvCase {
    xd: [usize; 4],
    wd: [usize; 4],
    opts: Conv2dOpts,
    bias: bool,
    seed: u64,
}

prop_compose! {
    fn conv_case(max_n: usize)(
        groups in 1usize..=2, cg_in in 1usize..=2, cg_out in 1usize..=2,
        kh in 1usize..=3, kw in 1usize..=3, sh in 1usize..=2, sw in 1usize..=3,
        ph in 0usize..=2, pw in 0usize..=1, dh in 1usize..=2, dw in 1usize..=2,
        n in 1usize..=max_n, eh in 0usize..=3, ew in 0usize..=3, bias in any::<bool>(), seed in any::<u64>(),
    ) -> ConvCase {
        let h = (dh * (kh - 1) + 1 + eh).saturating_sub(2 * ph).max(1);
        let w = (dw * (kw - 1) + 1 + ew).saturating_sub(2 * pw).max(1);
        let opts = Conv2dOpts { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups };
        ConvCase { xd: [n, cg_in * groups, h, w], wd: [cg_out * groups, cg_in, kh, kw], opts, bias, seed }
    }
}

fn fits(c: &ConvCase) -> bool {
    let o = c.opts;
    c.xd[2] + 2 * o.padding[0] > o.dilation[0] * (c.wd[2] - 1)
        && c.xd[3] + 2 * o.padding[1] > o.dilation[1] * (c.wd[3] - 1)
}

fn tensors(c: &ConvCase) -> (Tensor, Tensor, Tensor) {
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(c.seed);
    let x = Tensor::randn(c.xd, DType::F64, &mut rng);
    let w = Tensor::randn(c.wd, DType::F64, &mut rng);
    let b = Tensor::randn([c.wd[0]], DType::F64, &mut rng);
    (x, w, b)
}

/// Inputs without ties (distinct values at least 0.01 apart), for max pooling's derivatives.
fn distinct(dims: [usize; 4], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(seed);
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.05 - 1.0).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
    Tensor::from_vec(v, dims)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_values(c in conv_case(3)) {
        prop_assume!(fits(&c));
        let (x, w, b) = tensors(&c);
        let bv = b.to_vec::<f64>();
        let bias = c.bias.then_some(&b);
        let (want, yd) = naive_conv2d(&x.to_vec(), c.xd, &w.to_vec(), c.wd, c.bias.then_some(&bv[..]), c.opts);
        let what = format!("{c:?}");
        assert_close(&what, &x.conv2d(&w, bias, c.opts), &yd, &want, 1e-12)?;
        assert_close(&format!("{what} (strided)"), &strided(&x).conv2d(&strided(&w), bias, c.opts), &yd, &want, 1e-12)?;
        let f32s = |t: &Tensor| t.to_dtype(DType::F32);
        let y32 = f32s(&x).conv2d(&f32s(&w), bias.map(f32s).as_ref(), c.opts);
        prop_assert_eq!(y32.dtype(), DType::F32);
        assert_close(&format!("{what} (f32)"), &y32, &yd, &want, 1e-4)?;
    }

    #[test]
    fn conv1d_values(c in conv_case(2)) {
        // the width of each case as a 1-d convolution
        let o = Conv1dOpts { stride: c.opts.stride[1], padding: c.opts.padding[1], dilation: c.opts.dilation[1], groups: c.opts.groups };
        let c = ConvCase { xd: [c.xd[0], c.xd[1], 1, c.xd[3]], wd: [c.wd[0], c.wd[1], 1, c.wd[3]], opts: Conv2dOpts { stride: [1, o.stride], padding: [0, o.padding], dilation: [1, o.dilation], groups: o.groups }, ..c };
        prop_assume!(fits(&c));
        let (x, w, b) = tensors(&c);
        let bv = b.to_vec::<f64>();
        let (want, yd) = naive_conv2d(&x.to_vec(), c.xd, &w.to_vec(), c.wd, c.bias.then_some(&bv[..]), c.opts);
        let y = x.squeeze(2).conv1d(&w.squeeze(2), c.bias.then_some(&b), o);
        assert_close(&format!("{c:?}"), &y, &[yd[0], yd[1], yd[3]], &want, 1e-12)?;
    }

    #[test]
    fn pool_values(n in 1usize..=2, ch in 1usize..=3, h in 1usize..=7, w in 1usize..=7,
                   kh in 1usize..=3, kw in 1usize..=3, sh in 1usize..=3, sw in 1usize..=3,
                   ph in 0usize..=1, pw in 0usize..=1, seed in any::<u64>()) {
        let (ph, pw) = (ph.min(kh / 2), pw.min(kw / 2));
        prop_assume!(h + 2 * ph >= kh && w + 2 * pw >= kw);
        let xd = [n, ch, h, w];
        let x = Tensor::randn(xd, DType::F64, &mut nabla::rand::rngs::StdRng::seed_from_u64(seed));
        let (k, s, p) = ([kh, kw], [sh, sw], [ph, pw]);
        for max in [true, false] {
            let (want, yd) = naive_pool(&x.to_vec(), xd, k, s, p, max);
            let op = |t: &Tensor| if max { t.max_pool2d(k, s, p) } else { t.avg_pool2d(k, s, p) };
            let what = format!("{} {xd:?} k {k:?} s {s:?} p {p:?}", if max { "max" } else { "avg" });
            assert_close(&what, &op(&x), &yd, &want, 1e-12)?;
            assert_close(&format!("{what} (strided)"), &op(&strided(&x)), &yd, &want, 1e-12)?;
            assert_close(&format!("{what} (f32)"), &op(&x.to_dtype(DType::F32)), &yd, &want, 1e-5)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_gradients(c in conv_case(2)) {
        prop_assume!(fits(&c));
        let (x, w, b) = tensors(&c);
        let o = c.opts;
        let what = format!("{c:?}");
        if c.bias {
            let f = |v: &[Tensor]| v[0].conv2d(&v[1], Some(&v[2]), o);
            let inputs = [x, w, b];
            let r = check_grad(f, &inputs);
            prop_assert!(r.is_ok(), "{}: {}", what, r.unwrap_err());
            let r = check_grad2(f, &inputs);
            prop_assert!(r.is_ok(), "{}: second order: {}", what, r.unwrap_err());
        } else {
            let f = |v: &[Tensor]| v[0].conv2d(&v[1], None, o);
            let inputs = [x, w];
            let r = check_grad(f, &inputs);
            prop_assert!(r.is_ok(), "{}: {}", what, r.unwrap_err());
            let r = check_grad2(f, &inputs);
            prop_assert!(r.is_ok(), "{}: second order: {}", what, r.unwrap_err());
        }
    }

    #[test]
    fn conv1d_gradients(c in conv_case(2)) {
        let o = Conv1dOpts { stride: c.opts.stride[1], padding: c.opts.padding[1], dilation: c.opts.dilation[1], groups: c.opts.groups };
        let c = ConvCase { xd: [c.xd[0], c.xd[1], 1, c.xd[3]], wd: [c.wd[0], c.wd[1], 1, c.wd[3]], opts: Conv2dOpts { stride: [1, o.stride], padding: [0, o.padding], dilation: [1, o.dilation], groups: o.groups }, ..c };
        prop_assume!(fits(&c));
        let (x, w, b) = tensors(&c);
        let inputs = [x.squeeze(2), w.squeeze(2), b];
        let f = |v: &[Tensor]| v[0].conv1d(&v[1], Some(&v[2]), o);
        let r = check_grad(f, &inputs);
        prop_assert!(r.is_ok(), "{:?}: {}", c, r.unwrap_err());
        let r = check_grad2(f, &inputs);
        prop_assert!(r.is_ok(), "{:?}: second order: {}", c, r.unwrap_err());
    }

    #[test]
    fn pool_gradients(n in 1usize..=2, ch in 1usize..=2, h in 2usize..=5, w in 2usize..=5,
                      kh in 1usize..=3, kw in 1usize..=3, sh in 1usize..=2, sw in 1usize..=2,
                      ph in 0usize..=1, pw in 0usize..=1, seed in any::<u64>()) {
        let (ph, pw) = (ph.min(kh / 2), pw.min(kw / 2));
        prop_assume!(h + 2 * ph >= kh && w + 2 * pw >= kw);
        let (k, s, p) = ([kh, kw], [sh, sw], [ph, pw]);
        let x = distinct([n, ch, h, w], seed);
        let what = format!("{:?} k {k:?} s {s:?} p {p:?}", x.dims());
        let avg = |v: &[Tensor]| v[0].avg_pool2d(k, s, p);
        let r = check_grad(avg, std::slice::from_ref(&x));
        prop_assert!(r.is_ok(), "avg {}: {}", what, r.unwrap_err());
        let r = check_grad2(avg, std::slice::from_ref(&x));
        prop_assert!(r.is_ok(), "avg {}: second order: {}", what, r.unwrap_err());
        let max = |v: &[Tensor]| v[0].max_pool2d(k, s, p);
        let r = check_grad(max, std::slice::from_ref(&x));
        prop_assert!(r.is_ok(), "max {}: {}", what, r.unwrap_err());
    }
}

/// The benchmark's network in miniature: both derivatives of a two-layer convolutional network
/// with a ReLU and pooling, checked against finite differences in all parameters.
#[test]
fn small_network_gradients() {
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(4);
    let x = Tensor::randn([2, 1, 6, 6], DType::F64, &mut rng);
    let w1 = Tensor::randn([3, 1, 3, 3], DType::F64, &mut rng);
    let b1 = Tensor::randn([3], DType::F64, &mut rng);
    let w2 = Tensor::randn([2, 3, 3, 3], DType::F64, &mut rng);
    let f = |v: &[Tensor]| {
        let o = Conv2dOpts::default().padding(1);
        let h = v[0]
            .conv2d(&v[1], Some(&v[2]), o)
            .tanh()
            .avg_pool2d([2, 2], [2, 2], [0, 0]);
        h.conv2d(&v[3], None, o).square().sum()
    };
    check_grad(f, &[x.clone(), w1.clone(), b1.clone(), w2.clone()]).unwrap();
    check_grad2(f, &[x, w1, b1, w2]).unwrap();
}

/// Convolution (forward and input gradient) and max pooling write every element of their outputs,
/// whose buffers can come from the pool of recycled buffers with stale contents: leave a NaN-filled
/// buffer of the output's size there first (outputs of at least 16,384 elements are pooled), then
/// check every value.
#[test]
fn outputs_from_recycled_buffers_are_fully_written() {
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(9);
    let xd = [2, 4, 32, 32];
    let wd = [16, 2, 3, 3];
    let x = Tensor::randn(xd, DType::F64, &mut rng);
    let w = Tensor::randn(wd, DType::F64, &mut rng);
    let b = Tensor::randn([16], DType::F64, &mut rng);
    let bv = b.to_vec::<f64>();
    for opts in [
        Conv2dOpts::default().padding(1).groups(2),
        Conv2dOpts::default().groups(2),
    ] {
        for bias in [false, true] {
            let (want, yd) = naive_conv2d(
                &x.to_vec(),
                xd,
                &w.to_vec(),
                wd,
                bias.then_some(&bv[..]),
                opts,
            );
            for dtype in [DType::F64, DType::F32] {
                drop(Tensor::full(yd, f64::NAN, dtype));
                let (xt, wt, bt) = (x.to_dtype(dtype), w.to_dtype(dtype), b.to_dtype(dtype));
                let y = xt.conv2d(&wt, bias.then_some(&bt), opts);
                let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
                assert_close(
                    &format!("conv {opts:?} bias {bias} {dtype:?}"),
                    &y,
                    &yd,
                    &want,
                    tol,
                )
                .unwrap();
            }
        }
    }
    // The input gradient (a transposed convolution: folded columns, or direct products for a
    // pointwise kernel), pulled back once over a pooled NaN buffer and once over a zero one.
    let xd = [2, 8, 32, 32];
    let x = Tensor::randn(xd, DType::F64, &mut rng);
    for (wd, opts) in [
        ([4, 8, 3, 3], Conv2dOpts::default().padding(1)),
        ([6, 4, 1, 1], Conv2dOpts::default().groups(2)),
    ] {
        let w = Tensor::randn(wd, DType::F64, &mut rng);
        let (y, pullback) = nabla::vjp(|v| v[0].conv2d(&w, None, opts), std::slice::from_ref(&x));
        let r = Tensor::randn(y.dims(), DType::F64, &mut rng);
        drop(Tensor::zeros(xd, DType::F64));
        let want = pullback(&r).remove(0).to_vec::<f64>();
        assert!(
            want.iter().all(|v| v.is_finite()),
            "input gradient {wd:?}: not finite"
        );
        drop(Tensor::full(xd, f64::NAN, DType::F64));
        assert_close(
            &format!("input gradient {wd:?}"),
            &pullback(&r).remove(0),
            &xd,
            &want,
            0.0,
        )
        .unwrap();
    }
    let xd = [2, 16, 64, 64];
    let x = distinct(xd, 10);
    let (want, yd) = naive_pool(&x.to_vec(), xd, [2, 2], [2, 2], [0, 0], true);
    for dtype in [DType::F64, DType::F32] {
        drop(Tensor::full(yd, f64::NAN, dtype));
        let y = x.to_dtype(dtype).max_pool2d([2, 2], [2, 2], [0, 0]);
        assert_close(&format!("max pool {dtype:?}"), &y, &yd, &want, 1e-6).unwrap();
    }
}
