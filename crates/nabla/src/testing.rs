//! Gradient checking against central finite differences, like `torch.autograd.gradcheck`: use it to
//! test your own operations and models.

use crate::{DType, Tensor, jvp, vjp};
use rand::SeedableRng;

/// Options for [`check_grad_with`].
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance, in units of the magnitudes involved: an element passes when
    /// `|analytic − numeric| ≤ atol·scale + rtol·max(|analytic|, |numeric|) + noise`, where `scale`
    /// is the largest derivative (analytic or numeric) of that input and `noise` the rounding error
    /// of the finite difference itself. A function whose output and gradients are tiny is held to
    /// the same relative standard as one of order 1.
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

/// Whether `a` and `n` agree, for derivatives of magnitude up to `scale` and a finite difference
/// whose rounding error is `noise`.
fn close(a: f64, n: f64, scale: f64, noise: f64, o: &GradCheck) -> bool {
    (a - n).abs() <= o.atol * scale + o.rtol * n.abs().max(a.abs()) + noise
}

/// An estimate of the truncation error of the central difference `n` of `f` with step `eps`: its
/// distance to the difference with step `2·eps` (whose error is four times larger).
fn truncation(n: f64, f: &dyn Fn(f64) -> f64, eps: f64) -> f64 {
    let (fp, fm) = (f(2.0 * eps), f(-2.0 * eps));
    ((fp - fm) / (4.0 * eps) - n).abs() + fd_noise(fp, fm, 2.0 * eps)
}

/// The rounding error of a central difference of values `fp` and `fm` with step `eps`.
fn fd_noise(fp: f64, fm: f64, eps: f64) -> f64 {
    64.0 * f64::EPSILON * fp.abs().max(fm.abs()) / eps
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
        let shifted = |k: usize, d: f64| {
            let mut v = base.clone();
            v[k] += d;
            let mut xs = plain.clone();
            xs[i] = Tensor::from_vec(v, x.shape());
            project(&xs)
        };
        let numeric: Vec<(f64, f64)> = (0..base.len())
            .map(|k| {
                let (fp, fm) = (shifted(k, opts.eps), shifted(k, -opts.eps));
                ((fp - fm) / (2.0 * opts.eps), fd_noise(fp, fm, opts.eps))
            })
            .collect();
        let scale = g
            .iter()
            .chain(numeric.iter().map(|(n, _)| n))
            .fold(0.0f64, |m, v| m.max(v.abs()));
        for (k, &(n, noise)) in numeric.iter().enumerate() {
            // on a mismatch, allow for the difference's truncation error, estimated from a
            // second difference with twice the step (Richardson)
            if !close(g[k], n, scale, noise, opts)
                && !close(
                    g[k],
                    n,
                    scale,
                    noise + truncation(n, &|d| shifted(k, d), opts.eps),
                    opts,
                )
            {
                return Err(GradCheckError::Reverse {
                    input: i,
                    index: k,
                    analytic: g[k],
                    numeric: n,
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
        let (fp, fm) = (at(opts.eps), at(-opts.eps));
        let numeric = (fp - fm) / (2.0 * opts.eps);
        // the scale of a directional derivative: the size of the gradient along the direction
        let scale = grads
            .iter()
            .zip(&dirs)
            .map(|(g, d)| (g * d).abs().sum().item())
            .sum::<f64>()
            .max(analytic.abs())
            .max(numeric.abs());
        let noise = fd_noise(fp, fm, opts.eps);
        if !close(analytic, numeric, scale, noise, opts)
            && !close(
                analytic,
                numeric,
                scale,
                noise + truncation(numeric, &at, opts.eps),
                opts,
            )
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 256 factors in [0.6, 1.4] whose product is about 1e-25: the output and every derivative
    /// are far below an absolute tolerance of 1e-5.
    fn tiny_product_inputs() -> Tensor {
        let v: Vec<f64> = (0..256)
            .map(|i| {
                if i % 2 == 0 {
                    0.6 + 0.001 * (i % 7) as f64
                } else {
                    0.95 + 0.45 * ((i * 37) % 11) as f64 / 11.0
                }
            })
            .collect();
        assert!(v.iter().all(|x| (0.6..=1.4).contains(x)));
        Tensor::from_vec(v, [256])
    }

    fn product(x: &Tensor) -> Tensor {
        x.ln().sum().exp()
    }

    #[test]
    fn tolerance_scales_with_tiny_outputs_and_gradients() {
        let x = tiny_product_inputs();
        let p = product(&x).item();
        assert!(p > 0.0 && p < 1e-20, "{p}");
        // the right gradient passes
        check_grad(|xs: &[Tensor]| product(&xs[0]), std::slice::from_ref(&x)).unwrap();
        // a gradient 10% off (same value, 1.1 times the derivative) is caught
        let wrong = |xs: &[Tensor]| {
            let p = product(&xs[0]);
            &p * 1.1 - &(p.detach() * 0.1)
        };
        let e = check_grad(wrong, std::slice::from_ref(&x)).unwrap_err();
        assert!(matches!(e, GradCheckError::Reverse { .. }), "{e}");
    }
}
