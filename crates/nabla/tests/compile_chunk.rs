//! The chunked replay of lane-wise compiled programs (`Compiled::chunk_lanes`): bit-identical to
//! the whole-tape replay for `[n]` inputs, within 1e-12 of eager in f64 with 0-d inputs and with
//! the liveness-based reuse of value and adjoint places on random programs; programs that mix
//! lanes are not chunked; the vectorised `f32` sine and cosine of the replay are within one ulp of
//! the standard library's.

mod compile_common;

use compile_common::{assert_close, rk4_pendulum};
use nabla::{Tensor, compile, value_and_grad};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn assert_bits(what: &str, c: &Tensor, w: &Tensor) {
    assert_eq!(c.shape(), w.shape(), "{what}: shapes");
    let (c, w) = (c.to_vec::<f64>(), w.to_vec::<f64>());
    for (i, (x, y)) in c.iter().zip(&w).enumerate() {
        assert_eq!(
            x.to_bits(),
            y.to_bits(),
            "{what}[{i}]: chunked {x} vs whole {y}"
        );
    }
}

/// `steps` RK4 steps of the damped pendulum over a batch, the loss summed over the batch.
fn pendulum_batch(p: &[Tensor], steps: usize) -> Tensor {
    let (th, om) = rk4_pendulum(p, p[0].ones_like(), p[0].zeros_like(), steps);
    (&th * &th + &om * &om).sum()
}

fn batch_params(rng: &mut StdRng, n: usize) -> Vec<Tensor> {
    [(0.1, 0.05), (9.81, 1.0), (1.0, 0.5)]
        .iter()
        .map(|&(c, h)| {
            let v: Vec<f64> = (0..n)
                .map(|_| c + h * rng.random_range(-1.0..1.0f64))
                .collect();
            Tensor::from_vec(v, [n])
        })
        .collect()
}

#[test]
fn chunked_replay_equals_the_whole_replay_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(5);
    // 100 lanes: six chunks of 16 and a last one of 4
    let p = batch_params(&mut rng, 100);
    let f = |p: &[Tensor]| pendulum_batch(p, 40);
    let chunked = compile(f).chunk_lanes(16);
    let whole = compile(f).chunk_lanes(0);
    let (ev, eg) = value_and_grad(f, &p);
    for dtype in [nabla::DType::F64, nabla::DType::F32] {
        let p: Vec<Tensor> = p.iter().map(|t| t.to_dtype(dtype)).collect();
        for _ in 0..2 {
            // twice: the second replay reuses the pooled arenas
            let (cv, cg) = chunked.value_and_grad(&p);
            let (wv, wg) = whole.value_and_grad(&p);
            assert_bits("loss", &cv, &wv);
            for i in 0..3 {
                assert_bits(&format!("grad {i}"), &cg[i], &wg[i]);
            }
            if dtype == nabla::DType::F64 {
                assert_close("loss vs eager", &cv, &ev);
                for i in 0..3 {
                    assert_close(&format!("grad {i} vs eager"), &cg[i], &eg[i]);
                }
            }
        }
        // the value alone
        assert_bits("value", &chunked.call(&p), &whole.call(&p));
    }
    assert_eq!(chunked.stats().chunk_lanes, 16);
    assert_eq!(whole.stats().chunk_lanes, 0);
    assert_eq!(chunked.stats().eager_calls, 0);
}

#[test]
fn a_batch_output_and_a_mean_with_0d_inputs_chunk_and_match_eager() {
    let mut rng = StdRng::seed_from_u64(6);
    let n = 37;
    let x = Tensor::from_vec(
        (0..n)
            .map(|_| rng.random_range(-2.0..2.0f64))
            .collect::<Vec<f64>>(),
        [n],
    );
    let (a, c) = (Tensor::scalar(0.7f64), Tensor::scalar(-0.3f64));
    // [n] output: chunked, bit-identical to the whole replay
    let lanes = |p: &[Tensor]| (&p[0] * &p[1]).sin() * &p[0] + (&p[2] / (p[0].square() + 1.0));
    let xs = [x.clone(), a.clone(), c.clone()];
    let cl = compile(lanes).chunk_lanes(8);
    assert_bits(
        "lanes",
        &cl.call(&xs),
        &compile(lanes).chunk_lanes(0).call(&xs),
    );
    assert_close("lanes vs eager", &cl.call(&xs), &lanes(&xs));
    assert_eq!(cl.stats().chunk_lanes, 8);
    // a mean (sum then scaling) of it, with gradients for the 0-d inputs summed over chunks
    let mean = |p: &[Tensor]| lanes(p).tanh().mean() * 3.0 + 1.0;
    let cm = compile(mean).chunk_lanes(8);
    let (cv, cg) = cm.value_and_grad(&xs);
    let (ev, eg) = value_and_grad(mean, &xs);
    assert_close("mean", &cv, &ev);
    for i in 0..3 {
        assert_close(&format!("mean grad {i}"), &cg[i], &eg[i]);
    }
    assert_eq!(cm.stats().chunk_lanes, 8);
}

#[test]
fn programs_that_mix_lanes_replay_whole() {
    let x = Tensor::from_vec((0..40).map(|i| i as f64 * 0.1).collect::<Vec<f64>>(), [40]);
    let mixing: [fn(&[Tensor]) -> Tensor; 3] = [
        // a sum in the middle
        |p| (&p[0] * p[0].sum()).sin().sum(),
        // a view that moves lanes
        |p| (p[0].narrow(0, 1, 39) * p[0].narrow(0, 0, 39)).sum(),
        // a product of two sums at the end
        |p| p[0].sin().sum() * p[0].cos().sum(),
    ];
    for (k, f) in mixing.into_iter().enumerate() {
        let cf = compile(f).chunk_lanes(8);
        let (cv, cg) = cf.value_and_grad(std::slice::from_ref(&x));
        let (ev, eg) = value_and_grad(f, std::slice::from_ref(&x));
        assert_close(&format!("program {k}"), &cv, &ev);
        assert_close(&format!("program {k} grad"), &cg[0], &eg[0]);
        let st = cf.stats();
        assert_eq!((st.chunk_lanes, st.replays), (0, 1), "program {k}: {st:?}");
    }
}

/// A random lane-wise program over `[n]` and 0-d inputs: every value is live for a random span,
/// so the reuse of value and adjoint places is exercised in many patterns.
fn random_program(p: &[Tensor], code: &[(u8, usize, usize)]) -> Tensor {
    let mut pool: Vec<Tensor> = p.to_vec();
    for &(op, a, b) in code {
        let (x, y) = (&pool[a % pool.len()], &pool[b % pool.len()]);
        let z = match op {
            0 => x + y,
            1 => x - y,
            2 => (x * y).tanh(),
            3 => x / (y.square() + 1.0),
            4 => x.sin(),
            5 => x.cos() * 0.5,
            6 => (x.square() + 1.0).ln(),
            7 => (x.square() + 0.5).sqrt(),
            8 => x.sigmoid(),
            9 => x.tanh().exp(),
            10 => 1.5 / (x.square() + 1.0),
            _ => (x.square() + 1.0).powf(0.7),
        };
        pool.push(z);
    }
    // a few values (not only the last) reach the output
    let k = pool.len();
    let out = &pool[k - 1] + &pool[k / 2] * 0.5 + &pool[0];
    out.sum()
}

#[test]
fn random_lane_wise_programs_chunked_match_eager_and_the_whole_replay() {
    let mut rng = StdRng::seed_from_u64(12);
    for case in 0..30 {
        let n = rng.random_range(9..50);
        let n_inputs = rng.random_range(1..4);
        // the first input is [n]; the others [n] or 0-d
        let xs: Vec<Tensor> = (0..n_inputs)
            .map(|i| {
                if i > 0 && rng.random_range(0..3) == 0 {
                    Tensor::scalar(rng.random_range(-1.0..1.0f64))
                } else {
                    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
                    Tensor::from_vec(v, [n])
                }
            })
            .collect();
        let len = rng.random_range(5..60);
        let code: Vec<(u8, usize, usize)> = (0..len)
            .map(|_| {
                (
                    rng.random_range(0..12),
                    rng.random_range(0..1000),
                    rng.random_range(0..1000),
                )
            })
            .collect();
        let f = |p: &[Tensor]| random_program(p, &code);
        let chunk = rng.random_range(1..9);
        let cf = compile(f).chunk_lanes(chunk);
        let (cv, cg) = cf.value_and_grad(&xs);
        let (ev, eg) = value_and_grad(f, &xs);
        assert_close(&format!("case {case} value"), &cv, &ev);
        for i in 0..n_inputs {
            assert_close(&format!("case {case} grad {i}"), &cg[i], &eg[i]);
        }
        assert_eq!(cf.stats().chunk_lanes, chunk, "case {case}");
        if xs.iter().all(|x| x.numel() == n) {
            let (wv, wg) = compile(f).chunk_lanes(0).value_and_grad(&xs);
            assert_bits(&format!("case {case} value vs whole"), &cv, &wv);
            for i in 0..n_inputs {
                assert_bits(&format!("case {case} grad {i} vs whole"), &cg[i], &wg[i]);
            }
        }
    }
}

/// Distance in units in the last place between two `f32`s of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    if a.is_sign_negative() != b.is_sign_negative() {
        return (a.abs().to_bits() + b.abs().to_bits()).max(1);
    }
    a.to_bits().abs_diff(b.to_bits())
}

#[test]
fn the_vectorised_f32_sine_and_cosine_are_within_one_ulp() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut xs: Vec<f32> = Vec::new();
    for &r in &[1e-6f32, 0.1, 1.0, 4.0, 10.0, 100.0, 1e4, 9.9e4] {
        xs.extend((0..4000).map(|_| rng.random_range(-r..r)));
    }
    // multiples of π/2 (the reduction's hard cases), beyond the polynomial's range, special values
    xs.extend((-3000..3000).map(|k| k as f32 * std::f32::consts::FRAC_PI_2));
    xs.extend([
        1e5f32,
        -1.5e5,
        3e7,
        1e30,
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        1e-40,
    ]);
    xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    let n = xs.len();
    let x = Tensor::from_vec(xs.clone(), [n]);
    let sin = compile(|p: &[Tensor]| p[0].sin()).chunk_lanes(64);
    let cos = compile(|p: &[Tensor]| p[0].cos()).chunk_lanes(64);
    let (s, c) = (
        sin.call(std::slice::from_ref(&x)).to_vec::<f32>(),
        cos.call(std::slice::from_ref(&x)).to_vec::<f32>(),
    );
    assert_eq!(sin.stats().chunk_lanes, 64);
    let mut exact = 0;
    for (k, &x) in xs.iter().enumerate() {
        for (got, want, what) in [(s[k], x.sin(), "sin"), (c[k], x.cos(), "cos")] {
            if want.is_nan() {
                assert!(got.is_nan(), "{what}({x}) = {got}, expected NaN");
                continue;
            }
            let d = ulps(got, want);
            // near a zero of the function, allow an absolute error of one ulp of 1e-7
            assert!(
                d <= 1 || (got - want).abs() <= 1e-14,
                "{what}({x:e}) = {got:e}, std {want:e}: {d} ulps"
            );
            exact += usize::from(d == 0);
        }
    }
    assert!(
        exact as f64 >= 0.99 * 2.0 * n as f64,
        "{exact} of {} exact",
        2 * n
    );
    // the derivative in the backward pass: d/dx Σ sin x = cos x, d/dx Σ cos x = −sin x
    let dsin = compile(|p: &[Tensor]| p[0].sin().sum()).chunk_lanes(64);
    let (_, g) = dsin.value_and_grad(std::slice::from_ref(&x));
    for (k, (&g, &x)) in g[0].to_vec::<f32>().iter().zip(&xs).enumerate() {
        let want = x.cos();
        assert!(
            (want.is_nan() && g.is_nan()) || ulps(g, want) <= 1 || (g - want).abs() <= 1e-14,
            "d sin({x:e}) [{k}] = {g:e}, std cos {want:e}"
        );
    }
}
