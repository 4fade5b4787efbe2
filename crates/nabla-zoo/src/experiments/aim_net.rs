//! The trebuchet's aiming network ([`AimNet`]) and its frozen inference path ([`AimInference`]).

use super::trebuchet::{MassRange, Pair};
use nabla::DType;
use nabla::Tensor;
use nabla::nn::{Forward, Linear, Module};
use nabla::rand::Rng;
use std::f64::consts::FRAC_PI_2;

/// The aiming network: `(target, wind)` in (normalised), `(u, v)` out, turned into the controls
/// by [`MassRange::controls`].
#[derive(Module)]
pub struct AimNet {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl AimNet {
    /// A network with two hidden tanh layers of `hidden` units (f64).
    pub fn new<R: Rng + ?Sized>(hidden: usize, rng: &mut R) -> AimNet {
        let lin = |i, o, rng: &mut R| Linear::with_options(i, o, true, DType::F64, rng);
        // A small output layer: every target starts with about the same controls (~210 kg, 45 deg).
        let l3 = lin(hidden, 2, rng);
        let l3 = Linear::from_weights(l3.weight.detach() * 0.1, l3.bias.map(|b| b.detach() * 0.1));
        AimNet {
            l1: lin(2, hidden, rng),
            l2: lin(hidden, hidden, rng),
            l3,
        }
    }

    /// Network inputs `[n, 2]` for pairs.
    pub fn inputs(pairs: &[Pair]) -> Tensor {
        let v: Vec<f64> = pairs
            .iter()
            .flat_map(|p| [(p.target - 60.0) / 40.0, p.wind / 5.0])
            .collect();
        Tensor::from_vec(v, [pairs.len(), 2])
    }
}

/// A trained [`AimNet`] frozen for inference: its weights copied once into plain `f64` buffers,
/// and one aim computed by straight loops (no tensors, no graph, no allocation). The arithmetic
/// is the network's own (`tanh(W1 x + b1)`, `tanh(W2 h + b2)`, `W3 h + b3`, then the scaled
/// sigmoids of [`MassRange::controls`]); a test checks it against the tensor forward.
pub struct AimInference {
    hidden: usize,
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b2: Vec<f64>,
    w3: Vec<f64>,
    b3: Vec<f64>,
    range: MassRange,
}

impl AimInference {
    /// Freezes `net`'s current weights (each `Linear` stores `[out, in]`, PyTorch's layout).
    pub fn new(net: &AimNet, range: MassRange) -> AimInference {
        let w = |l: &Linear| l.weight.to_vec::<f64>();
        let b = |l: &Linear| l.bias.as_ref().map_or_else(Vec::new, |b| b.to_vec::<f64>());
        let hidden = net.l1.weight.dims()[0];
        let (b1, b2, b3) = (b(&net.l1), b(&net.l2), b(&net.l3));
        let pad = |v: Vec<f64>, n: usize| if v.is_empty() { vec![0.0; n] } else { v };
        AimInference {
            hidden,
            w1: w(&net.l1),
            b1: pad(b1, hidden),
            w2: w(&net.l2),
            b2: pad(b2, hidden),
            w3: w(&net.l3),
            b3: pad(b3, 2),
            range,
        }
    }

    /// The controls `(mass kg, release angle rad)` the network gives for one pair.
    pub fn aim(&self, p: Pair) -> (f64, f64) {
        const MAX_HIDDEN: usize = 256;
        let n = self.hidden;
        let x = [(p.target - 60.0) / 40.0, p.wind / 5.0];
        let mut h1 = [0.0f64; MAX_HIDDEN];
        let mut h2 = [0.0f64; MAX_HIDDEN];
        let (h1, h2) = if n <= MAX_HIDDEN {
            (&mut h1[..n], &mut h2[..n])
        } else {
            return self.aim_large(x);
        };
        for (i, h) in h1.iter_mut().enumerate() {
            *h = (self.w1[2 * i] * x[0] + self.w1[2 * i + 1] * x[1] + self.b1[i]).tanh();
        }
        for (i, h) in h2.iter_mut().enumerate() {
            let row = &self.w2[i * n..(i + 1) * n];
            *h = (row.iter().zip(h1.iter()).map(|(w, v)| w * v).sum::<f64>() + self.b2[i]).tanh();
        }
        self.head(h2)
    }

    fn aim_large(&self, x: [f64; 2]) -> (f64, f64) {
        let n = self.hidden;
        let h1: Vec<f64> = (0..n)
            .map(|i| (self.w1[2 * i] * x[0] + self.w1[2 * i + 1] * x[1] + self.b1[i]).tanh())
            .collect();
        let h2: Vec<f64> = (0..n)
            .map(|i| {
                let row = &self.w2[i * n..(i + 1) * n];
                (row.iter().zip(&h1).map(|(w, v)| w * v).sum::<f64>() + self.b2[i]).tanh()
            })
            .collect();
        self.head(&h2)
    }

    fn head(&self, h2: &[f64]) -> (f64, f64) {
        let n = self.hidden;
        let out = |k: usize| {
            let row = &self.w3[k * n..(k + 1) * n];
            row.iter().zip(h2).map(|(w, v)| w * v).sum::<f64>() + self.b3[k]
        };
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        (
            sig(out(0)) * (self.range.hi - self.range.lo) + self.range.lo,
            sig(out(1)) * FRAC_PI_2,
        )
    }
}

impl Forward for AimNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.l1.forward(x).tanh();
        let h = self.l2.forward(&h).tanh();
        self.l3.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla::rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn frozen_inference_matches_the_tensor_forward() {
        let range = MassRange {
            lo: 20.0,
            hi: 400.0,
        };
        for hidden in [16, 300] {
            let mut rng = StdRng::seed_from_u64(3);
            let net = AimNet::new(hidden, &mut rng);
            // make the last layer matter as much as the others
            let net = AimNet {
                l3: Linear::from_weights(
                    net.l3.weight.detach() * 10.0,
                    net.l3.bias.as_ref().map(|b| b.detach() * 10.0),
                ),
                ..net
            };
            let frozen = AimInference::new(&net, range);
            let pairs = [
                Pair {
                    target: 20.0,
                    wind: -7.0,
                },
                Pair {
                    target: 64.5,
                    wind: 0.3,
                },
                Pair {
                    target: 99.0,
                    wind: 11.0,
                },
            ];
            let out = net.forward(&AimNet::inputs(&pairs));
            let (m, a) = range.controls(&out.select(1, 0), &out.select(1, 1));
            let (m, a) = (m.to_vec::<f64>(), a.to_vec::<f64>());
            for (i, p) in pairs.iter().enumerate() {
                let (fm, fa) = frozen.aim(*p);
                assert!(
                    (fm - m[i]).abs() < 1e-9 * m[i].abs().max(1.0),
                    "{fm} vs {}",
                    m[i]
                );
                assert!((fa - a[i]).abs() < 1e-12, "{fa} vs {}", a[i]);
            }
        }
    }
}
