//! The one primitive the solvers add: `y + h * sum_j c_j k_j`, a Runge–Kutta stage or result in a
//! single graph node (instead of one multiply and one add per term), with its reverse and forward
//! rules.

use super::step::check_derivative;
use crate::Tensor;
use crate::autodiff::{InputGrads, Op, record};

/// `y + h * sum_j coeffs[j] * ks[j]`, where `h` is 0-d and every `k` has `y`'s shape and dtype.
///
/// # Panics
/// If the shapes or dtypes differ, or `coeffs` and `ks` have different lengths.
pub(crate) fn lincomb(y: &Tensor, h: &Tensor, coeffs: &[f64], ks: &[&Tensor]) -> Tensor {
    if coeffs.len() != ks.len() {
        panic!(
            "ode lincomb: {} coefficients for {} terms",
            coeffs.len(),
            ks.len()
        );
    }
    if h.numel() != 1 || h.dtype() != y.dtype() {
        panic!(
            "ode lincomb: the step must be one {} value, got shape {} {}",
            y.dtype(),
            h.shape(),
            h.dtype()
        );
    }
    for k in ks {
        check_derivative(k, y);
    }
    let out = crate::backend::lincomb(y, h.item(), coeffs, ks);
    let mut inputs: Vec<&Tensor> = Vec::with_capacity(ks.len() + 2);
    inputs.push(y);
    inputs.push(h);
    inputs.extend_from_slice(ks);
    record(
        out,
        LinComb {
            coeffs: coeffs.to_vec(),
        },
        &inputs,
    )
}

/// `sum_j coeffs[j] * ks[j]` with tensor operations (differentiable again).
fn combination(coeffs: &[f64], ks: &[Tensor]) -> Tensor {
    let mut acc: Option<Tensor> = None;
    for (&c, k) in coeffs.iter().zip(ks) {
        let term = k.scale(c);
        acc = Some(match acc {
            Some(a) => a + term,
            None => term,
        });
    }
    acc.expect("lincomb: at least one term")
}

struct LinComb {
    coeffs: Vec<f64>,
}

impl Op for LinComb {
    fn name(&self) -> &str {
        "ode_lincomb"
    }

    fn vjp(&self, inputs: &[Tensor], _out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let h = &inputs[1];
        let ks = &inputs[2..];
        let mut grads = InputGrads::with_capacity(inputs.len());
        grads.push(needs[0].then(|| g.clone()));
        grads.push(needs[1].then(|| (g * &combination(&self.coeffs, ks)).sum()));
        let gh = needs[2..].iter().any(|&b| b).then(|| g * h);
        for (j, &c) in self.coeffs.iter().enumerate() {
            grads.push(needs[j + 2].then(|| gh.as_ref().expect("needed").scale(c)));
        }
        grads
    }

    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor {
        let h = &inputs[1];
        let ks = &inputs[2..];
        let mut out = match &tangents[0] {
            Some(t) => t.clone(),
            None => inputs[0].zeros_like(),
        };
        if let Some(th) = &tangents[1] {
            out = out + th * &combination(&self.coeffs, ks);
        }
        for (j, &c) in self.coeffs.iter().enumerate() {
            if let Some(tk) = &tangents[j + 2] {
                out = out + (tk * h).scale(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, check_grad2};

    #[test]
    fn lincomb_values_and_gradients() {
        let y = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], [3]);
        let h = Tensor::scalar(0.7f64);
        let k1 = Tensor::from_vec(vec![1.0f64, 0.5, -0.25], [3]);
        let k2 = Tensor::from_vec(vec![-2.0f64, 0.1, 3.0], [3]);
        let out = lincomb(&y, &h, &[0.5, -1.5], &[&k1, &k2]);
        let want: Vec<f64> = (0..3)
            .map(|i| {
                y.to_vec::<f64>()[i]
                    + 0.7 * (0.5 * k1.to_vec::<f64>()[i] - 1.5 * k2.to_vec::<f64>()[i])
            })
            .collect();
        for (a, b) in out.to_vec::<f64>().iter().zip(&want) {
            assert!((a - b).abs() < 1e-15);
        }
        let f =
            |xs: &[Tensor]| lincomb(&xs[0], &xs[1], &[0.5, -1.5], &[&xs[2], &(&xs[3] * &xs[3])]);
        let inputs = [y.clone(), h.clone(), k1.clone(), k2.clone()];
        check_grad(f, &inputs).unwrap();
        check_grad2(f, &inputs).unwrap();
        // one element, f32
        let o = lincomb(
            &Tensor::scalar(1.0f32),
            &Tensor::scalar(0.5f32),
            &[2.0],
            &[&Tensor::scalar(3.0f32)],
        );
        assert_eq!(o.item(), 4.0);
    }
}
