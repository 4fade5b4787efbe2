//! Gradient checking against central finite differences, like `torch.autograd.gradcheck`: use it to
//! test your own operations and models.

use crate::{DType, Tensor, jvp, vjp};
use rand::SeedableRng;

/// Options for [`check_grad_with`].
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Seed of the random output projection and directions.
    pub seed: u64,
    /// Also check forward mode (`jvp`).
    pub forward_mode: bool,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-4,
            seed: 0,
            forward_mode: true,
        }
    }
}

/// A gradient that disagrees with finite differences.
#[derive(Debug, thiserror::Error)]
pub enum GradCheckError {
    /// Reverse mode disagrees at one element of one input.
    #[error(
        "reverse mode: input {input}, element {index}: gradient {analytic} but finite differences give {numeric}"
    )]
    Reverse {
        /// Which input.
        input: usize,
        /// Flat index into it.
        index: usize,
        /// What the gradient said.
        analytic: f64,
        /// What finite differences said.
        numeric: f64,
    },
    /// Forward mode disagrees with finite differences along a random direction.
    #[error(
        "forward mode: directional derivative {analytic} but finite differences give {numeric}"
    )]
    Forward {
        /// What `jvp` said (projected).
        analytic: f64,
        /// What finite differences said.
        numeric: f64,
    },
}

fn close(a: f64, n: f64, o: &GradCheck) -> bool {
    (a - n).abs() <= o.atol + o.rtol * n.abs().max(a.abs())
}

/// Checks `f`'s derivatives at `inputs` (all `f64`) with default options. See [`check_grad_with`].
///
/// ```
/// use nabla::{testing::check_grad, Tensor};
/// let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], [3]);
/// check_grad(|xs: &[Tensor]| xs[0].sin() * &xs[0], &[x]).unwrap();
/// ```
pub fn check_grad<F>(f: F, inputs: &[Tensor]) -> Result<(), GradCheckError>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    check_grad_with(f, inputs, &GradCheck::default())
}

/// Checks reverse mode (every input element) and forward mode (a random direction) of `f` against
/// central finite differences. A non-scalar output is projected on a fixed random vector `u`, so the
/// check covers `uᵀJ` for each input.
///
/// # Panics
/// If an input is not `f64` (finite differences in `f32` are too coarse to judge).
///
/// ```
/// use nabla::testing::{check_grad_with, GradCheck};
/// use nabla::Tensor;
/// let x = Tensor::from_vec(vec![0.5f64, 1.5], [2]);
/// let opts = GradCheck { eps: 1e-5, rtol: 1e-5, forward_mode: false, ..GradCheck::default() };
/// check_grad_with(|xs: &[Tensor]| xs[0].exp().cumsum(0), &[x], &opts).unwrap();
/// ```
pub fn check_grad_with<F>(f: F, inputs: &[Tensor], opts: &GradCheck) -> Result<(), GradCheckError>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    for x in inputs {
        if x.dtype() != DType::F64 {
            panic!(
                "check_grad: inputs must be f64, got {} {}",
                x.shape(),
                x.dtype()
            );
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let plain: Vec<Tensor> = inputs.iter().map(|x| x.detach()).collect();
    let out0 = crate::no_grad(|| f(&plain));
    let u = Tensor::randn(out0.shape(), DType::F64, &mut rng);
    let project = |xs: &[Tensor]| -> f64 { crate::no_grad(|| (f(xs).detach() * &u).sum().item()) };

    // reverse mode
    let (_, pullback) = vjp(|xs: &[Tensor]| f(xs), &plain);
    let grads = pullback(&u);
    for (i, x) in plain.iter().enumerate() {
        let g = grads[i].to_vec::<f64>();
        let base = x.to_vec::<f64>();
        for k in 0..base.len() {
            let shifted = |d: f64| {
                let mut v = base.clone();
                v[k] += d;
                let mut xs = plain.clone();
                xs[i] = Tensor::from_vec(v, x.shape());
                project(&xs)
            };
            let numeric = (shifted(opts.eps) - shifted(-opts.eps)) / (2.0 * opts.eps);
            if !close(g[k], numeric, opts) {
                return Err(GradCheckError::Reverse {
                    input: i,
                    index: k,
                    analytic: g[k],
                    numeric,
                });
            }
        }
    }

    // forward mode along a random direction
    if opts.forward_mode {
        let dirs: Vec<Tensor> = plain
            .iter()
            .map(|x| Tensor::randn(x.shape(), DType::F64, &mut rng))
            .collect();
        let (_, t) = jvp(|xs: &[Tensor]| f(xs), &plain, &dirs);
        let analytic = (t * &u).sum().item();
        let at = |s: f64| {
            let xs: Vec<Tensor> = plain.iter().zip(&dirs).map(|(x, d)| x + &(d * s)).collect();
            project(&xs)
        };
        let numeric = (at(opts.eps) - at(-opts.eps)) / (2.0 * opts.eps);
        if !close(analytic, numeric, opts) {
            return Err(GradCheckError::Forward { analytic, numeric });
        }
    }
    Ok(())
}

/// Checks second derivatives: the gradient of `w · ∇(u · f)` (random `u`, `w`) against finite
/// differences, in reverse and forward mode. Use it for operations that are twice differentiable.
///
/// ```
/// use nabla::{testing::check_grad2, Tensor};
/// let x = Tensor::from_vec(vec![0.3f64, -1.2], [2]);
/// check_grad2(|xs: &[Tensor]| xs[0].tanh(), &[x]).unwrap();
/// ```
pub fn check_grad2<F>(f: F, inputs: &[Tensor]) -> Result<(), GradCheckError>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    let opts = GradCheck {
        atol: 1e-4,
        rtol: 1e-3,
        ..GradCheck::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed + 1);
    let plain: Vec<Tensor> = inputs.iter().map(|x| x.detach()).collect();
    let out0 = crate::no_grad(|| f(&plain));
    let u = Tensor::randn(out0.shape(), DType::F64, &mut rng);
    let ws: Vec<Tensor> = plain
        .iter()
        .map(|x| Tensor::randn(x.shape(), DType::F64, &mut rng))
        .collect();
    let first = |xs: &[Tensor]| -> Tensor {
        let (_, pullback) = vjp(|ys: &[Tensor]| f(ys), xs);
        let gs = pullback(&u);
        let mut acc = Tensor::scalar(0.0f64);
        for (g, w) in gs.iter().zip(&ws) {
            acc = acc + (g * w).sum();
        }
        acc
    };
    check_grad_with(first, &plain, &opts)
}
