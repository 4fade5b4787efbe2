//! CPU kernels of the optimisers' updates: each rule is a plain loop over a chunk, compiled for
//! AVX2 when the CPU has it; large parameters are split across rayon threads.

use super::with_dtype;
use crate::backend::{AdagradRule, AdamRule, RmsRule, SgdRule, UpdateRule};
use crate::dtype::Element;
use crate::tensor::{Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};

impl Rule for SgdRule {
    #[inline(always)]
    fn apply<T: Element>(&self, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
        let (lr, mu, wd) = (
            T::from_f64(self.lr),
            T::from_f64(self.momentum),
            T::from_f64(self.wd),
        );
        if bufs.is_empty() {
            for i in 0..p.len() {
                let d = g[i] + wd * p[i];
                p[i] -= lr * d;
            }
            return;
        }
        let b = &mut *bufs[0];
        for i in 0..p.len() {
            let d = g[i] + wd * p[i];
            b[i] = mu * b[i] + d;
            let step = if self.nesterov { d + mu * b[i] } else { b[i] };
            p[i] -= lr * step;
        }
    }
}

impl Rule for AdamRule {
    #[inline(always)]
    fn apply<T: Element>(&self, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
        let (m, rest) = bufs.split_at_mut(1);
        let (m, v) = (&mut *m[0], &mut *rest[0]);
        let (b1, b2) = (T::from_f64(self.b1), T::from_f64(self.b2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - self.b1), T::from_f64(1.0 - self.b2));
        let step = T::from_f64(self.lr / self.bc1);
        let inv_bc2 = T::from_f64(1.0 / self.bc2_sqrt);
        let eps = T::from_f64(self.eps);
        let wd = T::from_f64(self.wd);
        let decay = T::from_f64(1.0 - self.lr * self.wd);
        // Zipped iterators (no bounds checks) so the loop vectorises.
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let gi = if self.decoupled { g } else { g + wd * *p };
            *m = b1 * *m + one_b1 * gi;
            *v = b2 * *v + one_b2 * gi * gi;
            let denom = v.sqrt() * inv_bc2 + eps;
            let pi = if self.decoupled { *p * decay } else { *p };
            *p = pi - step * *m / denom;
        }
    }
}

impl Rule for RmsRule {
    #[inline(always)]
    fn apply<T: Element>(&self, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
        let s = &mut *bufs[0];
        let (lr, a, eps, wd) = (
            T::from_f64(self.lr),
            T::from_f64(self.alpha),
            T::from_f64(self.eps),
            T::from_f64(self.wd),
        );
        let one_a = T::one() - a;
        for i in 0..p.len() {
            let gi = g[i] + wd * p[i];
            s[i] = a * s[i] + one_a * gi * gi;
            p[i] -= lr * gi / (s[i].sqrt() + eps);
        }
    }
}

impl Rule for AdagradRule {
    #[inline(always)]
    fn apply<T: Element>(&self, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
        let s = &mut *bufs[0];
        let (lr, eps, wd) = (
            T::from_f64(self.lr),
            T::from_f64(self.eps),
            T::from_f64(self.wd),
        );
        for i in 0..p.len() {
            let gi = g[i] + wd * p[i];
            s[i] += gi * gi;
            p[i] -= lr * gi / (s[i].sqrt() + eps);
        }
    }
}

/// Contiguous copy of `t` owned by nobody else, so its buffer can be written.
fn owned(t: &Tensor) -> Tensor {
    with_dtype!(t.dtype(), {
        let v: Vec<T> = t.contiguous_data::<T>().into_owned();
        Tensor::from_vec(v, t.shape())
    })
}

/// An elementwise update rule over a parameter, its gradient and the optimiser's buffers.
pub(crate) trait Rule: Sync {
    fn apply<T: Element>(&self, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]);
}

/// Applies `rule` to a parameter, writing it and its buffers in place when they are exclusively
/// owned. A parameter that something else still holds (typically the graph of the loss that is
/// still alive) is not copied first: the update writes a fresh buffer straight from the old values,
/// chunk by chunk, in the same pass. The parameter stays a variable.
pub(crate) fn update_with(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &impl Rule) {
    for b in bufs.iter_mut() {
        if with_dtype!(b.dtype(), b.try_data_mut::<T>().is_none()) {
            *b = owned(b);
        }
    }
    with_dtype!(p.dtype(), run::<T>(p, g, bufs, rule))
}

fn run<T: Element>(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &impl Rule) {
    let gd = g.contiguous_data::<T>();
    let mut others: Vec<&mut [T]> = bufs
        .iter_mut()
        .map(|b| b.try_data_mut::<T>().expect("owned buffer"))
        .collect();
    if let Some(ps) = p.try_data_mut::<T>() {
        par_apply(rule, None, ps, &gd, &mut others);
        return;
    }
    let src = p.contiguous_data::<T>();
    let fresh = storage::build_overwrite::<T>(src.len(), |dst| {
        par_apply(rule, Some(&src), dst, &gd, &mut others)
    });
    *p = Tensor::from_arc(fresh, p.shape().clone()).variable();
}

/// Splits large updates in halves across rayon threads (deterministic: elementwise). With `src`,
/// `p` is first filled from it, a cache-sized chunk at a time just before the chunk is updated.
fn par_apply<T: Element>(
    rule: &impl Rule,
    src: Option<&[T]>,
    p: &mut [T],
    g: &[T],
    bufs: &mut [&mut [T]],
) {
    if p.len() <= 1 << 15 {
        match src {
            None => apply_leaf(rule, p, g, bufs),
            Some(src) => {
                const CHUNK: usize = 4096;
                let mut parts: Vec<std::slice::ChunksMut<'_, T>> =
                    bufs.iter_mut().map(|b| b.chunks_mut(CHUNK)).collect();
                for ((p, s), g) in p
                    .chunks_mut(CHUNK)
                    .zip(src.chunks(CHUNK))
                    .zip(g.chunks(CHUNK))
                {
                    p.copy_from_slice(s);
                    let mut b: Vec<&mut [T]> = parts
                        .iter_mut()
                        .map(|c| c.next().expect("same length"))
                        .collect();
                    apply_leaf(rule, p, g, &mut b);
                }
            }
        }
        return;
    }
    let mid = p.len() / 2;
    let (p1, p2) = p.split_at_mut(mid);
    let (g1, g2) = g.split_at(mid);
    let (s1, s2) = src.map(|s| s.split_at(mid)).unzip();
    let mut b1 = Vec::with_capacity(bufs.len());
    let mut b2 = Vec::with_capacity(bufs.len());
    for b in bufs.iter_mut() {
        let (x, y) = std::mem::take(b).split_at_mut(mid);
        b1.push(x);
        b2.push(y);
    }
    rayon::join(
        || par_apply(rule, s1, p1, g1, &mut b1),
        || par_apply(rule, s2, p2, g2, &mut b2),
    );
}

/// Runs a rule over one chunk, compiled for AVX2 when the CPU has it (the rules are plain loops
/// the compiler vectorises; on mlp-step at batch 1, 0.24 → 0.17 ms per step). Rust never fuses a multiply
/// and an add on its own, so both paths round identically: results do not depend on the CPU.
#[inline]
fn apply_leaf<T: Element>(rule: &impl Rule, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { apply_avx2(rule, p, g, bufs) };
        return;
    }
    rule.apply(p, g, bufs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_avx2<T: Element>(rule: &impl Rule, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]) {
    rule.apply(p, g, bufs)
}

/// `rule` on `p`, `g` and `bufs`: the enum is matched once, each arm runs its monomorphised loop.
pub(crate) fn update(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &UpdateRule) {
    match rule {
        UpdateRule::Sgd(r) => update_with(p, g, bufs, r),
        UpdateRule::Adam(r) => update_with(p, g, bufs, r),
        UpdateRule::RmsProp(r) => update_with(p, g, bufs, r),
        UpdateRule::Adagrad(r) => update_with(p, g, bufs, r),
    }
}
