//! A blocked `f32` matrix product for AVX2+FMA hosts (the layout of BLIS and GotoBLAS): the
//! reduction is cut into blocks of up to `KC` steps and the rows into blocks of `MC`; for each
//! block pair, a `KC × NC` slice of B is packed into 16-column panels (kept in the L2/L3 cache)
//! and an `MC × KC` block of A into 6-row tiles (kept in L2), and a 6×16 register tile of C is
//! computed from one A tile and one B panel (the panel stays in L1 while every A tile of the
//! block passes by). Large products are split over the rayon threads along their longer side of
//! C, each thread packing its own operands, so no thread waits on another.
//!
//! On this crate's reference host (AMD Zen 3, 2 cores, AVX2) it runs a 1024³ product about 1.2-1.4x
//! faster than the `gemm` crate's AVX2 path (see BENCHMARKS.md); hosts with AVX-512 keep `gemm`'s
//! AVX-512 kernels, see [`available`].

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of the register tile.
const MR: usize = 6;
/// Columns of the register tile (two 8-lane vectors).
const NR: usize = 16;
/// Rows of A packed at a time (24 tiles; 144 × 512 floats = 288 KiB, inside a 512 KiB L2).
const MC: usize = 144;
/// The longest reduction block; the reduction is cut into equal blocks of at most this many steps.
const KC_MAX: usize = 512;
/// Columns of B packed at a time.
const NC: usize = 1024;

/// Products with at least this many multiply-adds, and every side at least [`MIN_SIDE`], use this
/// kernel; smaller ones are faster in `gemm`, which does not pack small operands.
pub(crate) const FROM_MADDS: usize = 1 << 21;
/// See [`FROM_MADDS`].
pub(crate) const MIN_SIDE: usize = 32;

/// Whether this kernel is the fastest one here: AVX2 and FMA, and no AVX-512 (where `gemm`'s
/// 16-lane kernels are used instead).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static YES: OnceLock<bool> = OnceLock::new();
        *YES.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && !is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The operands of one product, as raw pointers into caller-checked buffers.
#[derive(Clone, Copy)]
struct Job {
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

// SAFETY: the pointers are only used during `sgemm`, while the buffers they point into are
// borrowed, and concurrent workers write disjoint blocks of C.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

/// `c[m × n] (+)= a · b` for an `m × k` `a` (element `(i, p)` at `a[i·a_rs + p·a_cs]`) and a `k × n`
/// `b` (element `(p, j)` at `b[p·b_rs + j·b_cs]`), into `c` with row stride `ldc`, overwriting it
/// unless `accumulate`; split over `threads` rayon tasks.
///
/// # Safety
/// [`available`] must be true, every element the sizes and strides address must lie inside its
/// buffer, and `c`'s `m × n` block must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: *const f32,
    (a_rs, a_cs): (usize, usize),
    b: *const f32,
    (b_rs, b_cs): (usize, usize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let job = Job {
        k,
        a,
        a_rs,
        a_cs,
        b,
        b_rs,
        b_cs,
        c,
        ldc,
        accumulate,
    };
    let run = |(i0, i1): (usize, usize), (j0, j1): (usize, usize)| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2+FMA and the operands' bounds; the blocks are disjoint.
        unsafe {
            block(job, i0, i1, j0, j1)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (job, i0, i1, j0, j1);
    };
    // Split the longer side of C: each part packs all of the other operand, which costs
    // parts / (longer side) of the product.
    let parts = threads.clamp(1, 64);
    if parts == 1 {
        return run((0, m), (0, n));
    }
    use rayon::prelude::*;
    if n >= m {
        let w = n.div_ceil(parts).div_ceil(NR) * NR;
        (0..n.div_ceil(w))
            .into_par_iter()
            .for_each(|t| run((0, m), (t * w, (t * w + w).min(n))));
    } else {
        let h = m.div_ceil(parts).div_ceil(MR) * MR;
        (0..m.div_ceil(h))
            .into_par_iter()
            .for_each(|t| run((t * h, (t * h + h).min(m)), (0, n)));
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Packing space (A block, B slice) for [`block`], kept per thread between calls.
    static PACK: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Rows `i0..i1` × columns `j0..j1` of C on the current thread.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block(g: Job, i0: usize, i1: usize, j0: usize, j1: usize) {
    let passes = g.k.div_ceil(KC_MAX);
    let kc = g.k.div_ceil(passes).div_ceil(4) * 4;
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (abuf, bbuf) = &mut *bufs;
        let (mrows, ncols) = (i1 - i0, j1 - j0);
        abuf.resize(MC.min(mrows).div_ceil(MR) * MR * kc, 0.0);
        bbuf.resize(NC.min(ncols).div_ceil(NR) * NR * kc, 0.0);
        let mut tmp = [0f32; MR * NR];
        let mut jc = j0;
        while jc < j1 {
            let nc = NC.min(j1 - jc);
            let mut pc = 0;
            while pc < g.k {
                let kcur = kc.min(g.k - pc);
                let acc = g.accumulate || pc > 0;
                for (t, j) in (jc..jc + nc).step_by(NR).enumerate() {
                    let w = NR.min(jc + nc - j);
                    // SAFETY: panel t of at most NC/NR fits in bbuf; B's elements are in bounds.
                    unsafe { pack_b(g, pc, kcur, j, w, bbuf.as_mut_ptr().add(t * NR * kcur)) };
                }
                let mut ic = i0;
                while ic < i1 {
                    let mc = MC.min(i1 - ic);
                    for (t, i) in (ic..ic + mc).step_by(MR).enumerate() {
                        let h = MR.min(ic + mc - i);
                        // SAFETY: tile t of at most MC/MR fits in abuf; A's elements are in bounds.
                        unsafe { pack_a(g, pc, kcur, i, h, abuf.as_mut_ptr().add(t * MR * kcur)) };
                    }
                    for (tj, j) in (jc..jc + nc).step_by(NR).enumerate() {
                        let w = NR.min(jc + nc - j);
                        let bp = bbuf[tj * NR * kcur..].as_ptr();
                        for (ti, i) in (ic..ic + mc).step_by(MR).enumerate() {
                            let h = MR.min(ic + mc - i);
                            let ap = abuf[ti * MR * kcur..].as_ptr();
                            // SAFETY: (i, j) is inside C's block; partial tiles go through tmp.
                            unsafe {
                                let cp = g.c.add(i * g.ldc + j);
                                if h == MR && w == NR {
                                    kernel(kcur, ap, bp, cp, g.ldc, acc);
                                } else {
                                    kernel(kcur, ap, bp, tmp.as_mut_ptr(), NR, false);
                                    for r in 0..h {
                                        for x in 0..w {
                                            let d = cp.add(r * g.ldc + x);
                                            let v = tmp[r * NR + x];
                                            *d = if acc { *d + v } else { v };
                                        }
                                    }
                                }
                            }
                        }
                    }
                    ic += mc;
                }
                pc += kcur;
            }
            jc += nc;
        }
    });
}

/// Packs B's rows `pc..pc+kc`, columns `j..j+w` (`w ≤ 16`) as `kc` rows of 16 (zero-padded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(g: Job, pc: usize, kc: usize, j: usize, w: usize, dst: *mut f32) {
    unsafe {
        let src = g.b.add(pc * g.b_rs + j * g.b_cs);
        if w == NR && g.b_cs == 1 {
            for q in 0..kc {
                let s = src.add(q * g.b_rs);
                _mm256_storeu_ps(dst.add(q * NR), _mm256_loadu_ps(s));
                _mm256_storeu_ps(dst.add(q * NR + 8), _mm256_loadu_ps(s.add(8)));
            }
            return;
        }
        if w < NR {
            for q in 0..kc {
                std::ptr::write_bytes(dst.add(q * NR + w), 0, NR - w);
            }
        }
        if g.b_rs == 1 {
            // Columns are contiguous: read each one along the reduction.
            for x in 0..w {
                let s = src.add(x * g.b_cs);
                for q in 0..kc {
                    *dst.add(q * NR + x) = *s.add(q);
                }
            }
        } else {
            for q in 0..kc {
                for x in 0..w {
                    *dst.add(q * NR + x) = *src.add(q * g.b_rs + x * g.b_cs);
                }
            }
        }
    }
}

/// Packs A's rows `i..i+h` (`h ≤ 6`), columns `pc..pc+kc` as `kc` steps of 6 (zero-padded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(g: Job, pc: usize, kc: usize, i: usize, h: usize, dst: *mut f32) {
    unsafe {
        let src = g.a.add(i * g.a_rs + pc * g.a_cs);
        if h < MR {
            for q in 0..kc {
                std::ptr::write_bytes(dst.add(q * MR + h), 0, MR - h);
            }
        }
        if g.a_cs == 1 {
            // Rows are contiguous: read each one along the reduction.
            for r in 0..h {
                let s = src.add(r * g.a_rs);
                for q in 0..kc {
                    *dst.add(q * MR + r) = *s.add(q);
                }
            }
        } else {
            for q in 0..kc {
                let s = src.add(q * g.a_cs);
                for r in 0..h {
                    *dst.add(q * MR + r) = *s.add(r * g.a_rs);
                }
            }
        }
    }
}

/// One 6×16 tile: `c (+)= a · b` over `kc` steps of a packed A tile (6 per step) and a packed B
/// panel (16 per step), the twelve accumulators in registers, the loop unrolled four times.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    unsafe {
        for r in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + NR - 1) as *const i8);
        }
        let mut t = [[_mm256_setzero_ps(); 2]; MR];
        let (mut ap, mut bp) = (a, b);
        macro_rules! step {
            ($u:expr) => {
                let b0 = _mm256_loadu_ps(bp.add(NR * $u));
                let b1 = _mm256_loadu_ps(bp.add(NR * $u + 8));
                for (r, tr) in t.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ap.add(MR * $u + r));
                    tr[0] = _mm256_fmadd_ps(x, b0, tr[0]);
                    tr[1] = _mm256_fmadd_ps(x, b1, tr[1]);
                }
            };
        }
        for _ in 0..kc / 4 {
            step!(0);
            step!(1);
            step!(2);
            step!(3);
            _mm_prefetch::<_MM_HINT_T0>(ap.add(16 * MR) as *const i8);
            ap = ap.add(4 * MR);
            bp = bp.add(4 * NR);
        }
        for _ in 0..kc % 4 {
            step!(0);
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        for (r, tr) in t.iter().enumerate() {
            let p = c.add(r * ldc);
            if acc {
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), tr[0]));
                _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), tr[1]));
            } else {
                _mm256_storeu_ps(p, tr[0]);
                _mm256_storeu_ps(p.add(8), tr[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path (full and partial tiles, each operand's fast and strided packing, several
    /// reduction blocks, both thread splits, accumulation) against an f64 reference.
    #[test]
    fn matches_a_naive_product() {
        if !available() {
            return;
        }
        let mut state = 7u32;
        let mut rnd = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        // (m, n, k, A transposed, B transposed, accumulate, threads)
        for &(m, n, k, ta, tb, acc, threads) in &[
            (6, 16, 4, false, false, false, 1),
            (7, 17, 5, false, false, true, 1),
            (150, 40, 600, false, false, false, 1),
            (150, 40, 600, true, true, true, 1),
            (33, 1100, 70, false, true, false, 2),
            (200, 35, 1030, true, false, true, 3),
            (64, 64, 64, false, false, false, 2),
            (1, 20, 3, true, true, false, 2),
        ] {
            let (a_rs, a_cs) = if ta { (1, m + 1) } else { (k + 2, 1) };
            let (b_rs, b_cs) = if tb { (1, k + 3) } else { (n + 1, 1) };
            let a: Vec<f32> = (0..(m + 1) * (k + 2)).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..(n + 1) * (k + 3)).map(|_| rnd()).collect();
            let ldc = n + 4;
            let c0: Vec<f32> = (0..m * ldc).map(|_| rnd()).collect();
            let mut c = c0.clone();
            // SAFETY: available() holds; the strides above keep every element inside a and b.
            unsafe {
                sgemm(
                    (m, n, k),
                    a.as_ptr(),
                    (a_rs, a_cs),
                    b.as_ptr(),
                    (b_rs, b_cs),
                    c.as_mut_ptr(),
                    ldc,
                    acc,
                    threads,
                )
            };
            for i in 0..m {
                for j in 0..ldc {
                    let want = if j < n {
                        let dot: f64 = (0..k)
                            .map(|p| a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j * b_cs] as f64)
                            .sum();
                        dot + if acc { c0[i * ldc + j] as f64 } else { 0.0 }
                    } else {
                        c0[i * ldc + j] as f64
                    };
                    let got = c[i * ldc + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (k as f64).sqrt(),
                        "{m}x{n}x{k} ta={ta} tb={tb} at {i},{j}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
