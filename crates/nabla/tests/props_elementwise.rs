//! Property tests of the elementwise operations. For each: forward values against a naive reference
//! (f64, f32 and non-contiguous operands), reverse and forward mode against central finite
//! differences, and second order, over random shapes with broadcasting and size-1 dimensions.

mod props_common;

use nabla::rand::RngExt;
use nabla::rand::rngs::StdRng;
use nabla::{DType, Tensor, grad, jvp, soft_select, straight_through, vjp};
use props_common::*;
use proptest::prelude::*;

const CASES: u32 = 256;

type Gen = fn(&mut StdRng, &[usize]) -> Tensor;

/// A binary op with broadcasting: values (plain, strided, f32), gradients, second order.
fn binary(
    name: &str,
    (sa, sb): (&[usize], &[usize]),
    seed: u64,
    (gen_a, gen_b): (Gen, Gen),
    reference: fn(f64, f64) -> f64,
    op: fn(&Tensor, &Tensor) -> Tensor,
) -> R {
    let mut r = rng(seed);
    let (a, b) = (gen_a(&mut r, sa), gen_b(&mut r, sb));
    let (s, want) = ref_zip(&a, &b, reference);
    assert_values(name, &op(&a, &b), &s, &want, 1e-12)?;
    assert_values(
        &format!("{name} (strided)"),
        &op(&strided(&a), &strided(&b)),
        &s,
        &want,
        1e-12,
    )?;
    let y32 = op(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32));
    prop_assert_eq!(y32.dtype(), DType::F32);
    let (_, want32) = ref_zip(&round_f32(&a), &round_f32(&b), reference);
    assert_values(&format!("{name} (f32)"), &y32, &s, &want32, 1e-5)?;
    grads12(name, |x| op(&x[0], &x[1]), &[a.clone(), b.clone()])?;
    // one operand constant: the other's rules alone (`needs`, and a `None` tangent)
    grads12(
        &format!("{name} (rhs constant)"),
        |x| op(&x[0], &b),
        std::slice::from_ref(&a),
    )?;
    grads12(
        &format!("{name} (lhs constant)"),
        |x| op(&a, &x[0]),
        std::slice::from_ref(&b),
    )
}

fn any_value(r: &mut StdRng, s: &[usize]) -> Tensor {
    values(r, s, -2.0, 2.0, 0.0)
}

fn away_from_zero(r: &mut StdRng, s: &[usize]) -> Tensor {
    signed(r, s, 0.3, 2.0)
}

fn positive(r: &mut StdRng, s: &[usize]) -> Tensor {
    values(r, s, 0.3, 2.5, 0.0)
}

/// A unary op: values (plain, strided, f32), gradients (f64 and f32), second order.
fn unary(
    name: &str,
    shape: &[usize],
    seed: u64,
    (lo, hi, gap): (f64, f64, f64),
    op: &dyn Fn(&Tensor) -> Tensor,
    reference: &dyn Fn(f64) -> f64,
) -> R {
    let mut r = rng(seed);
    let x = values(&mut r, shape, lo, hi, gap);
    let want: Vec<f64> = x.to_vec::<f64>().into_iter().map(reference).collect();
    assert_values(name, &op(&x), shape, &want, 1e-11)?;
    assert_values(
        &format!("{name} (strided)"),
        &op(&strided(&x)),
        shape,
        &want,
        1e-11,
    )?;
    let x32 = x.to_dtype(DType::F32);
    let y32 = op(&x32);
    prop_assert_eq!(y32.dtype(), DType::F32);
    let want32: Vec<f64> = round_f32(&x)
        .to_vec::<f64>()
        .into_iter()
        .map(reference)
        .collect();
    assert_values(&format!("{name} (f32)"), &y32, shape, &want32, 1e-5)?;
    grads12(name, |x| op(&x[0]), std::slice::from_ref(&x))?;
    // f32 gradients agree with f64 ones at the same (rounded) point
    let g32 = grad(|x: &Tensor| op(x).sum())(&x32);
    prop_assert_eq!(g32.dtype(), DType::F32);
    let g64 = grad(|x: &Tensor| op(x).sum())(&round_f32(&x));
    assert_same(&format!("{name} gradient (f32)"), &g32, &g64, 1e-4)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

macro_rules! unary_props {
    ($($name:ident: $domain:expr, $op:expr, $reference:expr;)*) => {
        proptest! {
            #![proptest_config(config(CASES))]
            $(
                #[test]
                fn $name(s in shape0(0..=4, 4), seed in any::<u64>()) {
                    unary(stringify!($name), &s, seed, $domain, &$op, &$reference)?;
                }
            )*
        }
    };
}

const SMOOTH: (f64, f64, f64) = (-2.0, 2.0, 0.0);
/// Away from the kink at 0.
const KINKED: (f64, f64, f64) = (-2.0, 2.0, 0.05);
const POS: (f64, f64, f64) = (0.1, 3.0, 0.0);

unary_props! {
    exp: SMOOTH, |x: &Tensor| x.exp(), f64::exp;
    ln: POS, |x: &Tensor| x.ln(), f64::ln;
    log1p: (-0.8, 3.0, 0.0), |x: &Tensor| x.log1p(), f64::ln_1p;
    expm1: SMOOTH, |x: &Tensor| x.expm1(), f64::exp_m1;
    sqrt: POS, |x: &Tensor| x.sqrt(), f64::sqrt;
    abs: KINKED, |x: &Tensor| x.abs(), f64::abs;
    sin: (-3.0, 3.0, 0.0), |x: &Tensor| x.sin(), f64::sin;
    cos: (-3.0, 3.0, 0.0), |x: &Tensor| x.cos(), f64::cos;
    tan: (-1.2, 1.2, 0.0), |x: &Tensor| x.tan(), f64::tan;
    tanh: (-3.0, 3.0, 0.0), |x: &Tensor| x.tanh(), f64::tanh;
    sigmoid_: (-6.0, 6.0, 0.0), |x: &Tensor| x.sigmoid(), sigmoid;
    relu: KINKED, |x: &Tensor| x.relu(), |v: f64| v.max(0.0);
    gelu: (-3.0, 3.0, 0.0), |x: &Tensor| x.gelu(), |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()));
    erf_: SMOOTH, |x: &Tensor| x.erf(), erf;
    selu: KINKED, |x: &Tensor| x.selu(),
        |v: f64| nabla::SELU_SCALE * if v > 0.0 { v } else { nabla::SELU_ALPHA * (v.exp() - 1.0) };
    elu: KINKED, |x: &Tensor| x.elu(), |v: f64| if v > 0.0 { v } else { v.exp() - 1.0 };
    softplus: (-6.0, 6.0, 0.0), |x: &Tensor| x.softplus(), |v: f64| (1.0 + v.exp()).ln();
    silu: (-6.0, 6.0, 0.0), |x: &Tensor| x.silu(), |v: f64| v * sigmoid(v);
    log2: POS, |x: &Tensor| x.log2(), f64::log2;
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn add((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        binary("add", (&sa, &sb), seed, (any_value, any_value), |a, b| a + b, |a, b| a + b)?;
    }

    #[test]
    fn sub((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        binary("sub", (&sa, &sb), seed, (any_value, any_value), |a, b| a - b, |a, b| a - b)?;
    }

    #[test]
    fn mul((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        binary("mul", (&sa, &sb), seed, (any_value, any_value), |a, b| a * b, |a, b| a * b)?;
    }

    #[test]
    fn div((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        binary("div", (&sa, &sb), seed, (any_value, away_from_zero), |a, b| a / b, |a, b| a / b)?;
    }

    #[test]
    fn pow((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        binary("pow", (&sa, &sb), seed, (positive, any_value), f64::powf, |a, b| a.pow(b))?;
        binary("pow_tensor", (&sa, &sb), seed, (positive, any_value), f64::powf, |a, b| a.pow_tensor(b))?;
    }

    #[test]
    fn maximum((sa, sb) in broadcast_pair(), seed in any::<u64>(), swap in any::<bool>()) {
        // the two operands lie on interleaved grids, so they never tie
        let (ga, gb): (Gen, Gen) = (|r, s| grid(r, s, 0.0), |r, s| grid(r, s, 0.125));
        let gens = if swap { (gb, ga) } else { (ga, gb) };
        binary("maximum", (&sa, &sb), seed, gens, f64::max, |a, b| a.maximum(b))?;
    }

    #[test]
    fn minimum((sa, sb) in broadcast_pair(), seed in any::<u64>(), swap in any::<bool>()) {
        let (ga, gb): (Gen, Gen) = (|r, s| grid(r, s, 0.0), |r, s| grid(r, s, 0.125));
        let gens = if swap { (gb, ga) } else { (ga, gb) };
        binary("minimum", (&sa, &sb), seed, gens, f64::min, |a, b| a.minimum(b))?;
    }

    /// Incompatible shapes panic, naming the op and both shapes.
    #[test]
    fn broadcast_mismatch_panics(s in shape(1..=4, 4), axis in 0usize..4, seed in any::<u64>()) {
        let axis = axis % s.len();
        let mut s = s;
        s[axis] = s[axis].max(2);
        let mut t = s.clone();
        t[axis] += 1;
        let mut r = rng(seed);
        let (a, b) = (any_value(&mut r, &s), any_value(&mut r, &t));
        let msg = panic_message(|| &a * &b).unwrap_or_default();
        let want = format!("mul: shapes {} and {} cannot be broadcast", a.shape(), b.shape());
        prop_assert!(msg.contains(&want), "got {:?}, want {:?}", msg, want);
    }

    /// `x ∘ c` and `c ∘ x` with a Rust scalar, and the named scalar forms.
    #[test]
    fn scalar_forms(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let c = r.random_range(0.5..=2.0) * if r.random_bool(0.5) { 1.0 } else { -1.0 };
        let d = r.random_range(-2.0..=2.0);
        let x = signed(&mut r, &s, 0.2, 2.0);
        type F = Box<dyn Fn(&Tensor) -> Tensor>;
        type Rf = Box<dyn Fn(f64) -> f64>;
        let forms: Vec<(&str, F, Rf)> = vec![
            ("x + c", Box::new(move |x: &Tensor| x + c), Box::new(move |v: f64| v + c)),
            ("c + x", Box::new(move |x: &Tensor| c + x), Box::new(move |v: f64| c + v)),
            ("x - c", Box::new(move |x: &Tensor| x - c), Box::new(move |v: f64| v - c)),
            ("c - x", Box::new(move |x: &Tensor| c - x), Box::new(move |v: f64| c - v)),
            ("x * c", Box::new(move |x: &Tensor| x * c), Box::new(move |v: f64| v * c)),
            ("c * x", Box::new(move |x: &Tensor| c * x), Box::new(move |v: f64| c * v)),
            ("x / c", Box::new(move |x: &Tensor| x / c), Box::new(move |v: f64| v / c)),
            ("c / x", Box::new(move |x: &Tensor| c / x), Box::new(move |v: f64| c / v)),
            ("affine", Box::new(move |x: &Tensor| x.affine(c, d)), Box::new(move |v: f64| v * c + d)),
            ("scale", Box::new(move |x: &Tensor| x.scale(c)), Box::new(move |v: f64| v * c)),
            ("add_scalar", Box::new(move |x: &Tensor| x.add_scalar(d)), Box::new(move |v: f64| v + d)),
            ("rdiv_scalar", Box::new(move |x: &Tensor| x.rdiv_scalar(c)), Box::new(move |v: f64| c / v)),
            ("neg", Box::new(|x: &Tensor| x.neg()), Box::new(|v: f64| -v)),
            ("-x", Box::new(|x: &Tensor| -x), Box::new(|v: f64| -v)),
            ("recip", Box::new(|x: &Tensor| x.recip()), Box::new(|v: f64| 1.0 / v)),
            ("square", Box::new(|x: &Tensor| x.square()), Box::new(|v: f64| v * v)),
        ];
        for (name, op, reference) in &forms {
            let want: Vec<f64> = x.to_vec::<f64>().into_iter().map(reference).collect();
            assert_values(name, &op(&x), &s, &want, 1e-12)?;
            assert_values(name, &op(&strided(&x)), &s, &want, 1e-12)?;
            let want32: Vec<f64> = round_f32(&x).to_vec::<f64>().into_iter().map(reference).collect();
            assert_values(name, &op(&x.to_dtype(DType::F32)), &s, &want32, 1e-5)?;
            grads12(name, |xs| op(&xs[0]), std::slice::from_ref(&x))?;
        }
    }

    /// `powf` with integer exponents (any sign of base) and non-integer ones (positive base).
    #[test]
    fn powf(s in shape(0..=4, 4), seed in any::<u64>(), k in -3i32..=4, frac in -2.5f64..2.5) {
        let mut r = rng(seed);
        let cases = [
            (k as f64, signed(&mut r, &s, 0.3, 2.0)),
            (frac, values(&mut r, &s, 0.3, 2.5, 0.0)),
            (0.5, values(&mut r, &s, 0.3, 2.5, 0.0)),
            (2.0, signed(&mut r, &s, 0.1, 2.0)),
        ];
        for (p, x) in cases {
            let name = format!("powf({p})");
            let want: Vec<f64> = x.to_vec::<f64>().iter().map(|v| v.powf(p)).collect();
            assert_values(&name, &x.powf(p), &s, &want, 1e-12)?;
            assert_values(&name, &strided(&x).powf(p), &s, &want, 1e-12)?;
            let want32: Vec<f64> = round_f32(&x).to_vec::<f64>().iter().map(|v| v.powf(p)).collect();
            assert_values(&name, &x.to_dtype(DType::F32).powf(p), &s, &want32, 1e-5)?;
            grads12(&name, |xs| xs[0].powf(p), std::slice::from_ref(&x))?;
        }
    }

    #[test]
    fn leaky_relu(s in shape(0..=4, 4), seed in any::<u64>(), slope in 0.0f64..0.5) {
        let f = move |x: &Tensor| x.leaky_relu(slope);
        unary("leaky_relu", &s, seed, KINKED, &f, &|v| if v > 0.0 { v } else { slope * v })?;
    }

    /// The piecewise-constant functions: values only, and no gradient.
    #[test]
    fn sign_floor_ceil_round(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = values(&mut r, &s, -3.0, 3.0, 0.0);
        type F = fn(&Tensor) -> Tensor;
        type Rf = fn(f64) -> f64;
        let ops: [(&str, F, Rf); 4] = [
            ("sign", |x| x.sign(), |v| if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { 0.0 }),
            ("floor", |x| x.floor(), f64::floor),
            ("ceil", |x| x.ceil(), f64::ceil),
            ("round", |x| x.round(), f64::round),
        ];
        let v = x.variable();
        for (name, op, reference) in ops {
            let want: Vec<f64> = x.to_vec::<f64>().into_iter().map(reference).collect();
            assert_values(name, &op(&x), &s, &want, 0.0)?;
            assert_values(name, &op(&strided(&x)), &s, &want, 0.0)?;
            prop_assert!(!op(&v).requires_grad(), "{} requires grad", name);
        }
    }

    #[test]
    fn clamp(s in shape(0..=4, 4), seed in any::<u64>(), lo in -1.5f64..0.0, width in 0.3f64..2.0) {
        let hi = lo + width;
        let mut r = rng(seed);
        // values kept 0.05 away from both bounds
        let v: Vec<f64> = (0..numel(&s))
            .map(|_| loop {
                let v = r.random_range(-2.5..=2.5);
                if (v - lo).abs() > 0.05 && (v - hi).abs() > 0.05 {
                    break v;
                }
            })
            .collect();
        let x = Tensor::from_vec(v, s.as_slice());
        type F = Box<dyn Fn(&Tensor) -> Tensor>;
        let forms: [(&str, F, f64, f64); 3] = [
            ("clamp", Box::new(move |x: &Tensor| x.clamp(lo, hi)), lo, hi),
            ("clamp_min", Box::new(move |x: &Tensor| x.clamp_min(lo)), lo, f64::INFINITY),
            ("clamp_max", Box::new(move |x: &Tensor| x.clamp_max(hi)), f64::NEG_INFINITY, hi),
        ];
        for (name, op, a, b) in &forms {
            let want: Vec<f64> = x.to_vec::<f64>().iter().map(|v| v.max(*a).min(*b)).collect();
            assert_values(name, &op(&x), &s, &want, 0.0)?;
            assert_values(name, &op(&strided(&x)), &s, &want, 0.0)?;
            let want32: Vec<f64> = round_f32(&x).to_vec::<f64>().iter().map(|v| v.max(*a).min(*b)).collect();
            assert_values(name, &op(&x.to_dtype(DType::F32)), &s, &want32, 1e-6)?;
            grads12(name, |xs| op(&xs[0]), std::slice::from_ref(&x))?;
        }
        let msg = panic_message(|| x.clamp(hi, lo)).unwrap_or_default();
        prop_assert!(msg.starts_with(&format!("clamp: min {hi} is greater than max {lo}")), "{}", msg);
    }

    /// `where_` with a 0/1 mask: all three operands broadcast; differentiable in both branches.
    #[test]
    fn where_(shapes in broadcast_triple(), seed in any::<u64>()) {
        let [sm, st, sf] = shapes;
        let mut r = rng(seed);
        let m = mask(&mut r, &sm);
        let (t, f) = (any_value(&mut r, &st), any_value(&mut r, &sf));
        let s = broadcast_shape(&broadcast_shape(&sm, &st), &sf);
        let (dm, dt, df) = (m.to_vec::<f64>(), t.to_vec::<f64>(), f.to_vec::<f64>());
        let want: Vec<f64> = (0..numel(&s))
            .map(|i| {
                let idx = unravel(i, &s);
                if bread(&dm, &sm, &idx) != 0.0 { bread(&dt, &st, &idx) } else { bread(&df, &sf, &idx) }
            })
            .collect();
        assert_values("where", &m.where_(&t, &f), &s, &want, 0.0)?;
        assert_values("where (strided)", &strided(&m).where_(&strided(&t), &strided(&f)), &s, &want, 0.0)?;
        let m32 = m.to_dtype(DType::F32);
        let y32 = m32.where_(&t.to_dtype(DType::F32), &f.to_dtype(DType::F32));
        assert_values("where (f32)", &y32, &s, &want, 1e-6)?;
        // differentiable in both branches, with the mask constant
        grads12("where", |x| m.where_(&x[0], &x[1]), &[t.clone(), f.clone()])?;
        // only one branch tracked
        grads12("where (true branch)", |x| m.where_(&x[0], &f), std::slice::from_ref(&t))?;
        grads12("where (false branch)", |x| m.where_(&t, &x[0]), std::slice::from_ref(&f))?;
    }

    /// Comparisons: 0/1 values (with ties present), and no gradient even on tracked inputs.
    #[test]
    fn comparisons((sa, sb) in broadcast_pair(), seed in any::<u64>(), ci in -2i32..=2) {
        let mut r = rng(seed);
        // a coarse grid so that ties occur
        let mut coarse = |s: &[usize]| {
            let v: Vec<f64> = (0..numel(s)).map(|_| 0.5 * r.random_range(-2i32..=2) as f64).collect();
            Tensor::from_vec(v, s)
        };
        let (a, b) = (coarse(&sa), coarse(&sb));
        let c = 0.5 * ci as f64;
        type Cmp = fn(&Tensor, &Tensor) -> Tensor;
        type Scal = fn(&Tensor, f64) -> Tensor;
        type Pred = fn(f64, f64) -> bool;
        let ops: [(&str, Cmp, Scal, Pred); 6] = [
            ("eq", |a, b| a.eq(b), |a, c| a.eq_scalar(c), |x, y| x == y),
            ("ne", |a, b| a.ne(b), |a, c| a.ne_scalar(c), |x, y| x != y),
            ("lt", |a, b| a.lt(b), |a, c| a.lt_scalar(c), |x, y| x < y),
            ("le", |a, b| a.le(b), |a, c| a.le_scalar(c), |x, y| x <= y),
            ("gt", |a, b| a.gt(b), |a, c| a.gt_scalar(c), |x, y| x > y),
            ("ge", |a, b| a.ge(b), |a, c| a.ge_scalar(c), |x, y| x >= y),
        ];
        let (va, vb) = (a.variable(), b.variable());
        for (name, op, sop, pred) in ops {
            let (s, want) = ref_zip(&a, &b, |x, y| if pred(x, y) { 1.0 } else { 0.0 });
            assert_values(name, &op(&a, &b), &s, &want, 0.0)?;
            assert_values(name, &op(&strided(&a), &strided(&b)), &s, &want, 0.0)?;
            let y32 = op(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32));
            prop_assert_eq!(y32.dtype(), DType::F32);
            assert_values(name, &y32, &s, &want, 0.0)?;
            let want_s: Vec<f64> = a.to_vec::<f64>().iter().map(|&x| if pred(x, c) { 1.0 } else { 0.0 }).collect();
            assert_values(name, &sop(&a, c), &sa, &want_s, 0.0)?;
            // not differentiable: no graph node even on tracked inputs, no tangent in forward mode
            prop_assert!(!op(&va, &vb).requires_grad(), "{} on variables requires grad", name);
            prop_assert!(!op(&va, &b).requires_grad() && !sop(&va, c).requires_grad());
            let (_, t) = jvp(|x: &[Tensor]| op(&x[0], &x[1]), &[a.clone(), b.clone()], &[a.ones_like(), b.ones_like()]);
            prop_assert!(t.to_vec::<f64>().iter().all(|&v| v == 0.0), "{} has a tangent", name);
            // used as a factor, it contributes no gradient of its own
            let g = grad(|x: &Tensor| (x * &op(x, &b)).sum())(&a);
            let mask = op(&a, &b).sum_to(a.shape());
            assert_same(name, &g, &mask, 0.0)?;
        }
        let m = a.ge(&b);
        assert_same("logical_not", &m.logical_not(), &(1.0 - &m), 0.0)?;
        prop_assert!(!m.variable().logical_not().requires_grad());
    }

    /// `straight_through`: the value of `forward`, the derivatives of `surrogate`.
    #[test]
    fn straight_through_(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = values(&mut r, &s, -2.0, 2.0, 0.05);
        let st = |x: &Tensor| straight_through(&x.gt_scalar(0.0), &x.sigmoid());
        let want: Vec<f64> = x.to_vec::<f64>().iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
        assert_values("straight_through", &st(&x), &s, &want, 0.0)?;
        // reverse mode is that of the surrogate
        let u = values(&mut r, &s, -1.0, 1.0, 0.0);
        let g = vjp(|xs: &[Tensor]| st(&xs[0]), std::slice::from_ref(&x)).1(&u).remove(0);
        let gs = vjp(|xs: &[Tensor]| xs[0].sigmoid(), std::slice::from_ref(&x)).1(&u).remove(0);
        assert_same("straight_through vjp", &g, &gs, 1e-14)?;
        // forward mode too
        let t = jvp(|xs: &[Tensor]| st(&xs[0]), std::slice::from_ref(&x), std::slice::from_ref(&u)).1;
        let ts = jvp(|xs: &[Tensor]| xs[0].sigmoid(), std::slice::from_ref(&x), std::slice::from_ref(&u)).1;
        assert_same("straight_through jvp", &t, &ts, 1e-14)?;
        // with a forward value equal to the surrogate's, it passes the finite-difference checks
        grads12("straight_through", |xs| {
            let y = xs[0].sin() * &xs[0];
            straight_through(&y.detach(), &y)
        }, std::slice::from_ref(&x))?;
    }

    /// `soft_select(b, t, f) = b t + (1 - b) f`, differentiable in all three, with broadcasting.
    #[test]
    fn soft_select_(shapes in broadcast_triple(), seed in any::<u64>()) {
        let [sb, st, sf] = shapes;
        let mut r = rng(seed);
        let b = values(&mut r, &sb, 0.05, 0.95, 0.0);
        let (t, f) = (any_value(&mut r, &st), any_value(&mut r, &sf));
        let s = broadcast_shape(&broadcast_shape(&sb, &st), &sf);
        let (db, dt, df) = (b.to_vec::<f64>(), t.to_vec::<f64>(), f.to_vec::<f64>());
        let want: Vec<f64> = (0..numel(&s))
            .map(|i| {
                let idx = unravel(i, &s);
                let p = bread(&db, &sb, &idx);
                p * bread(&dt, &st, &idx) + (1.0 - p) * bread(&df, &sf, &idx)
            })
            .collect();
        assert_values("soft_select", &soft_select(&b, &t, &f), &s, &want, 1e-12)?;
        grads12("soft_select", |x| soft_select(&x[0], &x[1], &x[2]), &[b, t, f])?;
    }

    /// Conversions between f32 and f64: values round exactly as `as` does, gradients convert back.
    #[test]
    fn to_dtype_round_trips(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = values(&mut r, &s, -3.0, 3.0, 0.0);
        let dx = x.to_vec::<f64>();
        let x32 = x.to_dtype(DType::F32);
        prop_assert_eq!(x32.dtype(), DType::F32);
        prop_assert_eq!(x32.dims(), s.as_slice());
        let want32: Vec<f32> = dx.iter().map(|&v| v as f32).collect();
        prop_assert_eq!(x32.to_vec::<f32>(), want32.clone());
        prop_assert_eq!(strided(&x).to_dtype(DType::F32).to_vec::<f32>(), want32.clone());
        // f64 -> f32 -> f64 rounds; f32 -> f64 -> f32 is exact; same dtype is the identity
        let back = x32.to_dtype(DType::F64);
        prop_assert_eq!(back.dtype(), DType::F64);
        let want_back: Vec<f64> = want32.iter().map(|&v| v as f64).collect();
        prop_assert_eq!(back.to_vec::<f64>(), want_back);
        prop_assert_eq!(back.to_dtype(DType::F32).to_vec::<f32>(), want32);
        prop_assert_eq!(x.to_dtype(DType::F64).to_vec::<f64>(), dx);
        // gradients: through an f32 round trip (linear, so a coarse step is exact) and a no-op cast
        let w = values(&mut r, &s, -2.0, 2.0, 0.0);
        grads_linear_f32("to_dtype round trip", |xs| xs[0].to_dtype(DType::F32).to_dtype(DType::F64) * &w,
            std::slice::from_ref(&x))?;
        grads12("to_dtype (same)", |xs| xs[0].to_dtype(DType::F64).sin(), std::slice::from_ref(&x))?;
        // an f32 input differentiated through an f64 computation gets f32 gradients, at any order
        let g = grad(|x: &Tensor| x.to_dtype(DType::F64).powf(3.0).sum())(&x32);
        prop_assert_eq!(g.dtype(), DType::F32);
        let want_g: Vec<f64> = round_f32(&x).to_vec::<f64>().iter().map(|v| 3.0 * v * v).collect();
        assert_values("to_dtype gradient", &g, &s, &want_g, 1e-6)?;
        let g2 = grad(|x: &Tensor| grad(|y: &Tensor| y.to_dtype(DType::F64).powf(3.0).sum())(x).sum())(&x32);
        prop_assert_eq!(g2.dtype(), DType::F32);
        let want_g2: Vec<f64> = round_f32(&x).to_vec::<f64>().iter().map(|v| 6.0 * v).collect();
        assert_values("to_dtype second derivative", &g2, &s, &want_g2, 1e-6)?;
        // forward mode converts the tangent
        let (y, t) = jvp(|xs: &[Tensor]| xs[0].to_dtype(DType::F64), std::slice::from_ref(&x32),
            &[x32.ones_like()]);
        prop_assert_eq!((y.dtype(), t.dtype()), (DType::F64, DType::F64));
        prop_assert!(t.to_vec::<f64>().iter().all(|&v| v == 1.0));
    }

}

proptest! {
    #![proptest_config(config(8))]

    /// Operands large enough for the multi-threaded kernels (and their fast paths).
    #[test]
    fn large_values(rows in 1usize..=40, cols in 900usize..=1100, seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b, c) = (val(&mut r, &[rows, cols]), val(&mut r, &[rows, cols]), val(&mut r, &[cols]));
        let (s, want) = ref_zip(&a, &b, |x, y| x * y);
        assert_values("large mul", &(&a * &b), &s, &want, 1e-12)?;
        let (s, want) = ref_zip(&a, &c, |x, y| x - y);
        assert_values("large broadcast sub", &(&a - &c), &s, &want, 1e-12)?;
        let (s, want) = ref_zip(&a, &Tensor::scalar(2.0f64), |x, y| x * y);
        assert_values("large times scalar tensor", &(&a * &Tensor::scalar(2.0f64)), &s, &want, 1e-12)?;
        let want: Vec<f64> = a.to_vec::<f64>().iter().map(|v| v.exp()).collect();
        assert_values("large exp", &a.exp(), &s, &want, 1e-12)?;
        assert_values("large exp (strided)", &a.t().contiguous().t().exp(), &s, &want, 1e-12)?;
        let g = grad(|x: &Tensor| (x * &b).sum())(&a);
        assert_same("large mul gradient", &g, &b, 0.0)?;
    }
}

fn val(r: &mut StdRng, s: &[usize]) -> Tensor {
    values(r, s, -2.0, 2.0, 0.0)
}
