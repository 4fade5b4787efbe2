//! Neural arithmetic units (Trask et al. 2018, "Neural Arithmetic Logic Units").
//!
//! - [`Nac`] (NAC₊): `y = x Wᵀ` with `W = tanh(Ŵ) ⊙ σ(M̂)`, a weight pushed towards {-1, 0, 1}, so
//!   that a trained unit adds and subtracts its inputs exactly and extrapolates.
//! - [`NacMul`] (NAC×): `y = exp(log(|x| + ε) Wᵀ)` with the same `W`: products and quotients of
//!   input magnitudes (the sign is lost, as in the paper).
//! - [`Nalu`]: a learned gate `g = σ(x Gᵀ)` between the additive path `a = x Wᵀ` and the
//!   multiplicative path `m = exp(log(|x| + ε) Wᵀ)`, sharing `W`: `y = g ⊙ a + (1 - g) ⊙ m`.

use super::memnn::trainable;
use super::{Forward, Module, ParamKind, init, join};
use crate::{DType, Tensor};
use rand::Rng;

/// `tanh(w_hat) ⊙ sigmoid(m_hat)`: the NAC weight, in (-1, 1) and biased towards -1, 0 and 1.
pub fn nac_weight(w_hat: &Tensor, m_hat: &Tensor) -> Tensor {
    if w_hat.dims() != m_hat.dims() {
        panic!(
            "nac_weight: w_hat {} and m_hat {} differ",
            w_hat.shape(),
            m_hat.shape()
        );
    }
    w_hat.tanh() * m_hat.sigmoid()
}

/// The multiplicative path `exp(log(|x| + eps) Wᵀ)` for `x` `[..., in]` and `W` `[out, in]`.
pub fn log_space_product(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    (x.abs() + eps).ln().matmul(&w.t()).exp()
}

fn check_input(op: &str, x: &Tensor, w: &Tensor) {
    if x.rank() == 0 || x.dim(-1) != w.dims()[1] {
        panic!(
            "{op}: input {} does not end in {} features (weight {})",
            x.shape(),
            w.dims()[1],
            w.shape()
        );
    }
}

/// The additive neural accumulator NAC₊. See the module docs.
///
/// ```
/// use nabla::nn::{Forward, Nac};
/// use nabla::{DType, Tensor};
/// // a saturated NAC computes x0 - x1 exactly
/// let big = Tensor::from_vec(vec![20.0f64, -20.0], [1, 2]);
/// let nac = Nac::from_parameters(big, Tensor::full([1, 2], 20.0, DType::F64));
/// let y = nac.forward(&Tensor::from_vec(vec![5.0f64, 3.0], [1, 2]));
/// assert!((y.item() - 2.0).abs() < 1e-6);
/// ```
pub struct Nac {
    /// `Ŵ`, `[out, in]`.
    pub w_hat: Tensor,
    /// `M̂`, `[out, in]`.
    pub m_hat: Tensor,
}

impl Nac {
    /// Glorot-uniform `Ŵ` and `M̂`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        dtype: DType,
        rng: &mut R,
    ) -> Nac {
        let shape = [out_features, in_features];
        Nac::from_parameters(
            init::xavier_uniform(shape, 1.0, dtype, rng),
            init::xavier_uniform(shape, 1.0, dtype, rng),
        )
    }

    /// From given `Ŵ` and `M̂` (made trainable variables unless already recorded).
    ///
    /// # Panics
    /// If they are not two matrices of the same shape.
    pub fn from_parameters(w_hat: Tensor, m_hat: Tensor) -> Nac {
        if w_hat.rank() != 2 || w_hat.dims() != m_hat.dims() {
            panic!(
                "Nac: w_hat {} and m_hat {} must be matrices of one shape [out, in]",
                w_hat.shape(),
                m_hat.shape()
            );
        }
        Nac {
            w_hat: trainable(w_hat),
            m_hat: trainable(m_hat),
        }
    }

    /// The effective weight `W = tanh(Ŵ) ⊙ σ(M̂)`, `[out, in]`.
    pub fn weight(&self) -> Tensor {
        nac_weight(&self.w_hat, &self.m_hat)
    }
}

impl Forward for Nac {
    fn forward(&self, x: &Tensor) -> Tensor {
        let w = self.weight();
        check_input("Nac", x, &w);
        x.matmul(&w.t())
    }
}

fn visit_nac(nac: &Nac, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
    f(&join(prefix, "w_hat"), &nac.w_hat, ParamKind::Trainable);
    f(&join(prefix, "m_hat"), &nac.m_hat, ParamKind::Trainable);
}

fn visit_nac_mut(nac: &mut Nac, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
    f(&join(prefix, "w_hat"), &mut nac.w_hat, ParamKind::Trainable);
    f(&join(prefix, "m_hat"), &mut nac.m_hat, ParamKind::Trainable);
}

impl Module for Nac {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        visit_nac(self, prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        visit_nac_mut(self, prefix, f);
    }
}

/// The multiplicative accumulator NAC×: `exp(log(|x| + ε) Wᵀ)` with a NAC weight. See the module
/// docs.
pub struct NacMul {
    /// The weight (`Ŵ`, `M̂`).
    pub nac: Nac,
    /// `ε` inside the logarithm (default 1e-7).
    pub eps: f64,
}

impl NacMul {
    /// Glorot-uniform parameters, `ε = 1e-7`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        dtype: DType,
        rng: &mut R,
    ) -> NacMul {
        NacMul {
            nac: Nac::new(in_features, out_features, dtype, rng),
            eps: 1e-7,
        }
    }
}

impl Forward for NacMul {
    fn forward(&self, x: &Tensor) -> Tensor {
        let w = self.nac.weight();
        check_input("NacMul", x, &w);
        log_space_product(x, &w, self.eps)
    }
}

impl Module for NacMul {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        visit_nac(&self.nac, prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        visit_nac_mut(&mut self.nac, prefix, f);
    }
}

/// The neural arithmetic logic unit. See the module docs.
///
/// ```
/// use nabla::nn::{Forward, Nalu};
/// use nabla::rand::{SeedableRng, rngs::StdRng};
/// use nabla::{DType, Tensor};
/// let nalu = Nalu::new(3, 2, DType::F32, &mut StdRng::seed_from_u64(0));
/// assert_eq!(nalu.forward(&Tensor::ones([5, 3], DType::F32)).dims(), &[5, 2]);
/// ```
pub struct Nalu {
    /// The weight shared by both paths.
    pub nac: Nac,
    /// The gate's weight `G`, `[out, in]`.
    pub gate: Tensor,
    /// `ε` inside the logarithm (default 1e-7).
    pub eps: f64,
}

impl Nalu {
    /// Glorot-uniform parameters, `ε = 1e-7`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        dtype: DType,
        rng: &mut R,
    ) -> Nalu {
        let nac = Nac::new(in_features, out_features, dtype, rng);
        let gate = init::xavier_uniform([out_features, in_features], 1.0, dtype, rng).variable();
        Nalu {
            nac,
            gate,
            eps: 1e-7,
        }
    }

    /// The gate `σ(x Gᵀ)`: 1 selects the additive path, 0 the multiplicative one.
    pub fn gate(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.gate.t()).sigmoid()
    }
}

impl Forward for Nalu {
    fn forward(&self, x: &Tensor) -> Tensor {
        let w = self.nac.weight();
        check_input("Nalu", x, &w);
        if self.gate.dims() != w.dims() {
            panic!(
                "Nalu: gate {} and weight {} differ",
                self.gate.shape(),
                w.shape()
            );
        }
        let add = x.matmul(&w.t());
        let mul = log_space_product(x, &w, self.eps);
        crate::soft_select(&self.gate(x), &add, &mul)
    }
}

impl Module for Nalu {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        visit_nac(&self.nac, prefix, f);
        f(&join(prefix, "gate"), &self.gate, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        visit_nac_mut(&mut self.nac, prefix, f);
        f(&join(prefix, "gate"), &mut self.gate, ParamKind::Trainable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_grad;
    use rand::{SeedableRng, rngs::StdRng};

    fn input(rng: &mut StdRng) -> Tensor {
        // magnitudes away from 0, where |x| has its kink
        let x = Tensor::uniform([4, 3], 0.5, 2.0, DType::F64, rng);
        let sign = Tensor::from_vec(
            (0..12)
                .map(|i| if i % 3 == 1 { -1.0 } else { 1.0 })
                .collect::<Vec<f64>>(),
            [4, 3],
        );
        x * sign
    }

    #[test]
    fn nac_gradient() {
        let mut rng = StdRng::seed_from_u64(0);
        let x = input(&mut rng);
        let n = Nac::new(3, 2, DType::F64, &mut rng);
        check_grad(
            |p: &[Tensor]| Nac::from_parameters(p[1].clone(), p[2].clone()).forward(&p[0]),
            &[x, n.w_hat.detach(), n.m_hat.detach()],
        )
        .unwrap();
    }

    #[test]
    fn nac_mul_gradient() {
        let mut rng = StdRng::seed_from_u64(1);
        let x = input(&mut rng);
        let n = NacMul::new(3, 2, DType::F64, &mut rng);
        check_grad(
            |p: &[Tensor]| {
                NacMul {
                    nac: Nac::from_parameters(p[1].clone(), p[2].clone()),
                    eps: 1e-7,
                }
                .forward(&p[0])
            },
            &[x, n.nac.w_hat.detach(), n.nac.m_hat.detach()],
        )
        .unwrap();
    }

    #[test]
    fn nalu_gradient() {
        let mut rng = StdRng::seed_from_u64(2);
        let x = input(&mut rng);
        let n = Nalu::new(3, 2, DType::F64, &mut rng);
        check_grad(
            |p: &[Tensor]| {
                Nalu {
                    nac: Nac::from_parameters(p[1].clone(), p[2].clone()),
                    gate: p[3].clone(),
                    eps: 1e-7,
                }
                .forward(&p[0])
            },
            &[
                x,
                n.nac.w_hat.detach(),
                n.nac.m_hat.detach(),
                n.gate.detach(),
            ],
        )
        .unwrap();
    }

    #[test]
    fn saturated_units_compute_exact_arithmetic() {
        let x = Tensor::from_vec(vec![3.0f64, 4.0], [1, 2]);
        let sat = |s: [f64; 2]| {
            Nac::from_parameters(
                Tensor::from_vec(vec![30.0 * s[0], 30.0 * s[1]], [1, 2]),
                Tensor::full([1, 2], 40.0, DType::F64),
            )
        };
        assert!((sat([1.0, -1.0]).forward(&x).item() + 1.0).abs() < 1e-9);
        let div = NacMul {
            nac: sat([1.0, -1.0]),
            eps: 0.0,
        };
        assert!((div.forward(&x).item() - 0.75).abs() < 1e-9);
        let mul = Nalu {
            nac: sat([1.0, 1.0]),
            gate: Tensor::full([1, 2], -30.0, DType::F64),
            eps: 0.0,
        };
        assert!((mul.forward(&x).item() - 12.0).abs() < 1e-9);
    }
}
