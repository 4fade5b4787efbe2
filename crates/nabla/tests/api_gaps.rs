//! The core API gaps of issue 12: joint Hessian-vector products in both modes, `jvp` with several
//! outputs and broadcast tangents, the tanh form of GELU, stepped slicing, average pooling without
//! the padding in the divisor, and axis arguments of any integer type (negative from the end).

use nabla::testing::{check_grad, check_grad2};
use nabla::{DType, HvpMode, Tensor, grad, hvp, hvp_joint, hvp_with, jvp, value_and_grad};
use rand::SeedableRng;

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// A scalar function of three tensors of different shapes with cross terms between all of them.
fn coupled(p: &[Tensor]) -> Tensor {
    let (a, b, c) = (&p[0], &p[1], &p[2]);
    (a.sin() * b).sum() * c + (a.square().sum() * c.exp()) + (b * b * b).sum() * a.sum()
}

fn coupled_inputs() -> (Vec<Tensor>, Vec<Tensor>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let xs = vec![
        Tensor::randn([3], DType::F64, &mut rng),
        Tensor::randn([3], DType::F64, &mut rng),
        Tensor::scalar(0.3f64),
    ];
    let vs = vec![
        Tensor::randn([3], DType::F64, &mut rng),
        Tensor::randn([3], DType::F64, &mut rng),
        Tensor::scalar(-0.7f64),
    ];
    (xs, vs)
}

#[test]
fn joint_hvp_both_modes_agree_with_finite_differences_of_the_gradient() {
    let (xs, vs) = coupled_inputs();
    let fwd = hvp_with(HvpMode::ForwardOverReverse, coupled, &xs, &vs);
    let rev = hvp_with(HvpMode::ReverseOverReverse, coupled, &xs, &vs);
    let dflt = hvp_joint(coupled, &xs, &vs);
    let eps = 1e-5;
    let shifted = |s: f64| -> Vec<Tensor> {
        let ys: Vec<Tensor> = xs.iter().zip(&vs).map(|(x, v)| x + &(v * s)).collect();
        value_and_grad(coupled, &ys).1
    };
    let (gp, gm) = (shifted(eps), shifted(-eps));
    for i in 0..3 {
        let fd = ((&gp[i] - &gm[i]) / (2.0 * eps)).to_vec::<f64>();
        assert_eq!(fwd[i].shape(), xs[i].shape());
        assert!(close(&fwd[i].to_vec::<f64>(), &fd, 1e-6), "fwd block {i}");
        assert!(close(&rev[i].to_vec::<f64>(), &fd, 1e-6), "rev block {i}");
        assert!(close(
            &dflt[i].to_vec::<f64>(),
            &fwd[i].to_vec::<f64>(),
            1e-12
        ));
    }
}

#[test]
fn single_input_hvp_still_works_and_matches_the_joint_form() {
    let f = |x: &Tensor| (x.sin() * x.exp()).sum() + (x * x).sum() * x.sum();
    let x = Tensor::from_vec(vec![0.1f64, -0.4, 0.9], [3]);
    let v = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], [3]);
    let hv = hvp(f, &x, &v).to_vec::<f64>();
    let g = grad(f);
    let rr = grad(move |y: &Tensor| (g(y) * &v).sum())(&x).to_vec::<f64>();
    assert!(close(&hv, &rr, 1e-12));
    let v = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], [3]);
    for mode in [
        HvpMode::Auto,
        HvpMode::ForwardOverReverse,
        HvpMode::ReverseOverReverse,
    ] {
        let joint = hvp_with(
            mode,
            |p: &[Tensor]| f(&p[0]),
            std::slice::from_ref(&x),
            std::slice::from_ref(&v),
        );
        assert!(close(&joint[0].to_vec::<f64>(), &rr, 1e-12));
    }
}

#[test]
fn hvp_composes_with_grad() {
    // d/dx of <H(x) v, 1> for f = sum(x^4): H v = 12 x² v, so the result is 24 x v
    let x = Tensor::from_vec(vec![0.5f64, -1.0], [2]);
    let v = Tensor::from_vec(vec![1.0f64, 3.0], [2]);
    for mode in [
        HvpMode::Auto,
        HvpMode::ForwardOverReverse,
        HvpMode::ReverseOverReverse,
    ] {
        let vv = v.clone();
        let d = grad(move |y: &Tensor| {
            hvp_with(
                mode,
                |p: &[Tensor]| p[0].powf(4.0).sum(),
                std::slice::from_ref(y),
                std::slice::from_ref(&vv),
            )[0]
            .sum()
        })(&x);
        assert!(close(&d.to_vec::<f64>(), &[12.0, -72.0], 1e-12), "{mode:?}");
    }
}

#[test]
#[should_panic(expected = "hvp: 2 inputs but 1 directions")]
fn hvp_direction_count_must_match() {
    let x = Tensor::scalar(1.0f64);
    hvp_joint(
        |p: &[Tensor]| (&p[0] * &p[1]).sum(),
        &[x.clone(), x.clone()],
        &[x],
    );
}

#[test]
fn jvp_pushes_several_outputs_forward() {
    let x = Tensor::from_vec(vec![0.2f64, 1.5], [2]);
    let w = Tensor::scalar(2.0f64);
    let (ys, ts) = jvp(
        |p: &[Tensor]| vec![p[0].sin() * &p[1], p[0].sum() * &p[1], p[1].exp()],
        &[x.clone(), w.clone()],
        &[
            Tensor::from_vec(vec![1.0f64, 0.0], [2]),
            Tensor::scalar(1.0f64),
        ],
    );
    assert_eq!(ys.len(), 3);
    assert_eq!(ts.len(), 3);
    let xv = x.to_vec::<f64>();
    // d(sin x · w) = cos x · dx · w + sin x · dw
    let want0 = [xv[0].cos() * 2.0 + xv[0].sin(), xv[1].sin()];
    assert!(close(&ts[0].to_vec::<f64>(), &want0, 1e-14));
    assert!(close(&[ts[1].item()], &[2.0 + 1.7], 1e-14));
    assert!(close(&[ts[2].item()], &[2f64.exp()], 1e-14));
    assert!(close(&ys[2].to_vec::<f64>(), &[2f64.exp()], 1e-14));
    assert!(!ys[0].requires_grad());
}

#[test]
fn jvp_accepts_one_element_and_broadcast_tangents() {
    // a 0-d tangent for a [1] primal and a [1] tangent for a 0-d primal
    let (_, t) = jvp(
        |p: &[Tensor]| (&p[0] * &p[1]).sum(),
        &[Tensor::from_vec(vec![3.0f64], [1]), Tensor::scalar(2.0f64)],
        &[Tensor::scalar(1.0f64), Tensor::from_vec(vec![0.0f64], [1])],
    );
    assert_eq!(t.item(), 2.0);
    // a 0-d tangent broadcast over a [3] primal: the directional derivative along (1, 1, 1)
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
    let (_, t) = jvp(
        |p: &[Tensor]| p[0].square().sum(),
        &[x],
        &[Tensor::scalar(1.0f64)],
    );
    assert_eq!(t.item(), 12.0);
}

#[test]
#[should_panic(expected = "jvp: tangent [2] f64 does not match primal [3] f64")]
fn jvp_rejects_a_tangent_that_does_not_broadcast() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
    let _: (Tensor, Tensor) = jvp(
        |p: &[Tensor]| p[0].sum(),
        &[x],
        &[Tensor::from_vec(vec![1.0f64, 1.0], [2])],
    );
}

#[test]
fn gelu_tanh_matches_its_formula_and_gradients() {
    let xs = [-3.0f64, -0.7, 0.0, 0.4, 2.5];
    let y = Tensor::from_vec(xs.to_vec(), [5])
        .gelu_tanh()
        .to_vec::<f64>();
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let want: Vec<f64> = xs
        .iter()
        .map(|&x| 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()))
        .collect();
    assert!(close(&y, &want, 1e-15));
    // within 1e-3 of the exact form everywhere here
    let exact = Tensor::from_vec(xs.to_vec(), [5]).gelu().to_vec::<f64>();
    assert!(y.iter().zip(&exact).all(|(a, b)| (a - b).abs() < 1e-3));
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x = Tensor::randn([4, 3], DType::F64, &mut rng).scale(2.0);
    check_grad(|p: &[Tensor]| p[0].gelu_tanh(), std::slice::from_ref(&x)).unwrap();
    check_grad2(|p: &[Tensor]| p[0].gelu_tanh(), std::slice::from_ref(&x)).unwrap();
    // f32 agrees with f64
    let y32 = x.to_dtype(DType::F32).gelu_tanh().to_vec::<f32>();
    let y64 = x.gelu_tanh().to_vec::<f64>();
    assert!(
        y32.iter()
            .zip(&y64)
            .all(|(a, b)| (*a as f64 - b).abs() < 1e-5)
    );
}

#[test]
fn stepped_slices_take_the_right_elements_and_differentiate() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape([4, 6]);
    assert_eq!(
        x.slice(1, 1, 6, 2).to_vec::<f64>(),
        vec![1., 3., 5., 7., 9., 11., 13., 15., 17., 19., 21., 23.]
    );
    assert_eq!(x.slice(0, -3, 100, 2).dims(), &[2, 6]);
    assert_eq!(x.slice(0, 3, 1, 2).dims(), &[0, 6]);
    assert_eq!(x.slice(1, 0, 6, 4).to_vec::<f64>()[..4], [0., 4., 6., 10.]);
    // a stepped slice of a stepped slice (of a transposed view)
    let y = x.t().slice(0, 1, 6, 2).slice(1, 0, 4, 3);
    assert_eq!(y.to_vec::<f64>(), vec![1., 19., 3., 21., 5., 23.]);
    let v = x.variable();
    let g = v.slice(1, 0, 6, 3).sum().backward();
    let gv = g.get(&v).unwrap().to_vec::<f64>();
    assert_eq!(&gv[..6], &[1., 0., 0., 1., 0., 0.]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let r = Tensor::randn([5, 7], DType::F64, &mut rng);
    let f = |p: &[Tensor]| p[0].slice(-1, 1, 7, 3).square() * p[0].slice(0, 0, 5, 2).sum();
    check_grad(f, std::slice::from_ref(&r)).unwrap();
    check_grad2(f, std::slice::from_ref(&r)).unwrap();
}

#[test]
#[should_panic(expected = "slice: step must be positive")]
fn slice_refuses_a_zero_step() {
    Tensor::zeros([3], DType::F64).slice(0, 0, 3, 0);
}

#[test]
fn avg_pool_without_padding_in_the_divisor() {
    let x = Tensor::from_vec((0..9).map(|v| v as f64).collect(), [1, 1, 3, 3]);
    let y = x
        .avg_pool2d_with([3, 3], [2, 2], [1, 1], false)
        .to_vec::<f64>();
    // windows cover the 2x2 corners of the 3x3 grid
    assert_eq!(y, vec![2.0, 3.0, 5.0, 6.0]);
    let inc = x
        .avg_pool2d_with([3, 3], [2, 2], [1, 1], true)
        .to_vec::<f64>();
    assert_eq!(inc, x.avg_pool2d([3, 3], [2, 2], [1, 1]).to_vec::<f64>());
    assert_eq!(inc[0], 8.0 / 9.0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let r = Tensor::randn([2, 2, 5, 6], DType::F64, &mut rng);
    let f = |p: &[Tensor]| p[0].avg_pool2d_with([3, 2], [2, 1], [1, 1], false);
    check_grad(f, std::slice::from_ref(&r)).unwrap();
    check_grad2(f, std::slice::from_ref(&r)).unwrap();
}

#[test]
fn axes_of_any_integer_type_negative_from_the_end_or_all() {
    use nabla::AllAxes;
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape([2, 3, 4]);
    // permute takes negative axes and any integer type
    let a = x.permute([-1, 0, 1]);
    assert_eq!(a.dims(), &[4, 2, 3]);
    let perm: Vec<usize> = vec![2, 0, 1];
    assert_eq!(x.permute(&perm).to_vec::<f64>(), a.to_vec::<f64>());
    let axis: usize = 2;
    assert_eq!(
        x.sum_axis(axis, false).to_vec::<f64>(),
        x.sum_axis(-1, false).to_vec::<f64>()
    );
    assert_eq!(x.narrow(1usize, 1, 2).dims(), &[2, 2, 4]);
    assert_eq!(x.softmax(-1i32).dims(), &[2, 3, 4]);
    // reductions over every axis without spelling the list
    assert_eq!(x.sum_axes(AllAxes, true).dims(), &[1, 1, 1]);
    assert_eq!(x.sum_axes(AllAxes, false).item(), 276.0);
    assert_eq!(x.max_axes(AllAxes, false).item(), 23.0);
    assert_eq!(x.mean_axes(AllAxes, false).item(), 11.5);
    let lse = x.logsumexp(AllAxes, false).item();
    assert!((lse - x.exp().sum().ln().item()).abs() < 1e-12);
    assert_eq!(x.var_axes(AllAxes, 0, false).item(), x.var(0).item());
    // lists as arrays, slices, vectors, by value or by reference
    let axes = vec![0isize, -1];
    assert_eq!(
        x.sum_axes(&axes, false).to_vec::<f64>(),
        x.sum_axes([0, 2], false).to_vec::<f64>()
    );
    assert_eq!(x.sum_axes(&axes[..], false).dims(), &[3]);
}

#[test]
#[should_panic(expected = "permute: [0, -2] is not a permutation of the 2 dimensions of [2, 3]")]
fn permute_still_names_a_bad_permutation() {
    Tensor::zeros([2, 3], DType::F64).permute([0, -2]);
}
