//! Vectorisable `sin` and `cos` over slices of `f32`, for the compiled replay (the library's
//! `sinf`/`cosf` are opaque calls, one element at a time).
//!
//! Each element is widened to `f64`, reduced by the nearest multiple `j` of π/2 (Cody-Waite, π/2
//! in two parts: the first has 33 significant bits, so `j · part` is exact for `|j| < 2^20`), and
//! `sin r`, `cos r` on `|r| ≤ π/4` are Taylor polynomials to degree 11 and 12 (truncation below
//! 1e-11 relative, far under the half-ulp of `f32`, 3e-8); the quadrant `j mod 4` selects and
//! signs the result, which is rounded to `f32` once. So the result is the correctly rounded value
//! except within 1e-11 of a rounding boundary (then one ulp off), like glibc's `sinf`, which also
//! works in `f64`. Branch-free: the loop compiles to SIMD code. Elements outside `|x| ≤ 1e5`
//! (and NaN, ±∞) are recomputed by the standard library afterwards.

/// 2/π.
const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
/// π/2, first 33 bits.
const PIO2_HI: f64 = 1.570_796_326_734_125_6;
/// π/2 − `PIO2_HI`.
const PIO2_LO: f64 = 6.077_100_506_506_192e-11;
/// 1.5 · 2^52: adding it rounds to an integer held in the low bits of the significand.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// Largest `|x|` the reduction handles (far inside `|j| < 2^20`).
const LIMIT: f32 = 1.0e5;

/// `out[k] = sin(x[k])`.
#[inline(always)]
pub(super) fn sin_f32(out: &mut [f32], x: &[f32]) {
    kernel::<0>(out, x);
}

/// `out[k] = cos(x[k])` (the sine a quarter turn on).
#[inline(always)]
pub(super) fn cos_f32(out: &mut [f32], x: &[f32]) {
    kernel::<1>(out, x);
}

/// Whether the reduction handles `x` (false for NaN).
#[inline(always)]
fn tame(x: f32) -> bool {
    x.abs() <= LIMIT
}

#[inline(always)]
fn kernel<const SHIFT: u64>(out: &mut [f32], x: &[f32]) {
    let mut wild = false;
    for (o, &xf) in out.iter_mut().zip(x) {
        let xd = xf as f64;
        let t = xd * FRAC_2_PI + ROUND;
        let q = t.to_bits().wrapping_add(SHIFT);
        let j = t - ROUND;
        let r = (xd - j * PIO2_HI) - j * PIO2_LO;
        let r2 = r * r;
        let s = r + r
            * r2
            * (-1.0 / 6.0
                + r2 * (1.0 / 120.0
                    + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0 + r2 * (-1.0 / 39_916_800.0)))));
        let c = 1.0
            + r2 * (-0.5
                + r2 * (1.0 / 24.0
                    + r2 * (-1.0 / 720.0
                        + r2 * (1.0 / 40_320.0
                            + r2 * (-1.0 / 3_628_800.0 + r2 * (1.0 / 479_001_600.0))))));
        let v = if q & 1 == 0 { s } else { c };
        let v = if q & 2 == 0 { v } else { -v };
        *o = v as f32;
        wild |= !tame(xf);
    }
    if wild {
        for (o, &xf) in out.iter_mut().zip(x) {
            if !tame(xf) {
                *o = if SHIFT == 0 { xf.sin() } else { xf.cos() };
            }
        }
    }
}
