//! AVX2 + FMA kernels for the `f32` recurrent layers: vectorised `sigmoid`/`tanh` (Cephes'
//! `expf`/`tanhf` algorithms, within a few ulp) and a register-blocked matrix product for the
//! shapes recurrent layers produce (a few rows times a few hundred columns, or long reductions).
//!
//! Every entry point checks the CPU at run time and returns `false` (doing nothing) when AVX2/FMA
//! is missing or the shape is not supported, so callers fall back to portable code.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the CPU has AVX2 and FMA (the detection is cached by the standard library).
#[inline]
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// ----- activations ----------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
mod act {
    use super::*;

    /// `eˣ` on 8 lanes: x clamped to [-87.3, 88] (NaN propagates), x = n ln2 + r, eʳ by a degree-6
    /// polynomial, 2ⁿ by building the exponent bits.
    #[inline(always)]
    pub(super) unsafe fn exp8(x: __m256) -> __m256 {
        unsafe {
            let x = _mm256_min_ps(
                _mm256_set1_ps(88.0),
                _mm256_max_ps(_mm256_set1_ps(-87.3), x),
            );
            let fx = _mm256_floor_ps(_mm256_fmadd_ps(
                x,
                _mm256_set1_ps(std::f32::consts::LOG2_E),
                _mm256_set1_ps(0.5),
            ));
            let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
            let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
            let z = _mm256_mul_ps(r, r);
            let mut p = _mm256_set1_ps(1.987_569_1e-4);
            for c in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                5e-1,
            ] {
                p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
            }
            let y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0));
            let n = _mm256_cvtps_epi32(fx);
            let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                n,
                _mm256_set1_epi32(127),
            )));
            _mm256_mul_ps(y, pow2n)
        }
    }

    #[inline(always)]
    pub(super) unsafe fn sigmoid8(x: __m256) -> __m256 {
        unsafe {
            let one = _mm256_set1_ps(1.0);
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
            _mm256_div_ps(one, _mm256_add_ps(one, e))
        }
    }

    #[inline(always)]
    pub(super) unsafe fn tanh8(x: __m256) -> __m256 {
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            let a = _mm256_andnot_ps(sign, x);
            // |x| < 0.625: x + x³ P(x²)
            let s = _mm256_mul_ps(x, x);
            let mut p = _mm256_set1_ps(-5.704_988_7e-3);
            for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
                p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(c));
            }
            let small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
            // elsewhere: sign(x) (1 - 2 / (e^{2|x|} + 1))
            let one = _mm256_set1_ps(1.0);
            let e = exp8(_mm256_add_ps(a, a));
            let big = _mm256_sub_ps(
                one,
                _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
            );
            let big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
            let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(0.625));
            _mm256_blendv_ps(big, small, is_small)
        }
    }

    /// Applies `f` to every element of `s` (the tail through a padded block, so every element gets
    /// exactly the same arithmetic).
    #[inline(always)]
    pub(super) unsafe fn map_inplace(s: &mut [f32], f: impl Fn(__m256) -> __m256) {
        unsafe {
            let mut chunks = s.chunks_exact_mut(8);
            for c in &mut chunks {
                _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr())));
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mut buf = [0f32; 8];
                buf[..rest.len()].copy_from_slice(rest);
                _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr())));
                rest.copy_from_slice(&buf[..rest.len()]);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sigmoid_avx2(s: &mut [f32]) {
        unsafe { map_inplace(s, |v| sigmoid8(v)) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tanh_avx2(s: &mut [f32]) {
        unsafe { map_inplace(s, |v| tanh8(v)) }
    }
}

/// `s ← sigmoid(s)` elementwise; `false` (untouched) without AVX2/FMA.
pub(crate) fn sigmoid_inplace(s: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU supports AVX2 and FMA.
        unsafe { act::sigmoid_avx2(s) };
        return true;
    }
    let _ = s;
    false
}

/// `s ← tanh(s)` elementwise; `false` (untouched) without AVX2/FMA.
pub(crate) fn tanh_inplace(s: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU supports AVX2 and FMA.
        unsafe { act::tanh_avx2(s) };
        return true;
    }
    let _ = s;
    false
}

// ----- matrix product --------------------------------------------------------------------------------

/// Width of the panel that starts with `rem` columns left: 16, or 8 for a short last panel.
#[inline]
fn panel_width(rem: usize) -> usize {
    if rem > 8 { 16 } else { 8 }
}

/// A `k × n` right-hand operand packed for [`sgemm_packed`]: panels of 16 columns (the last one 8
/// or 16 wide, zero-padded), each stored row after row, so the kernel reads it sequentially
/// whatever the original strides (strides that are powers of two would otherwise alias in the L1
/// cache).
pub(crate) struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs the matrix whose element `(p, j)` is `b[p * b_rs + j * b_cs]`, into `buf`'s storage.
    ///
    /// # Panics
    /// If `b` is too short.
    pub(crate) fn new_in(
        mut buf: Vec<f32>,
        b: &[f32],
        (b_rs, b_cs): (usize, usize),
        k: usize,
        n: usize,
    ) -> PackedB {
        if k > 0 && n > 0 {
            assert!(
                (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
                "PackedB: b too short"
            );
        }
        buf.clear();
        buf.reserve(k * (n.div_ceil(8) * 8 + 8));
        let mut j = 0;
        while j < n {
            let w = panel_width(n - j);
            let valid = w.min(n - j);
            for p in 0..k {
                let row = p * b_rs + j * b_cs;
                if b_cs == 1 {
                    buf.extend_from_slice(&b[row..row + valid]);
                } else {
                    buf.extend((0..valid).map(|c| b[row + c * b_cs]));
                }
                buf.extend(std::iter::repeat_n(0.0, w - valid));
            }
            j += w;
        }
        PackedB { data: buf, k, n }
    }

    /// [`new_in`](PackedB::new_in) with a new buffer.
    #[cfg(test)]
    pub(crate) fn new(b: &[f32], strides: (usize, usize), k: usize, n: usize) -> PackedB {
        PackedB::new_in(Vec::new(), b, strides, k, n)
    }

    /// The storage, for reuse.
    pub(crate) fn into_buffer(self) -> Vec<f32> {
        self.data
    }
}

/// Raw operands of one product (pointers into caller-checked buffers).
#[derive(Clone, Copy)]
struct Job {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    /// Packed as in [`PackedB`].
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

// SAFETY: the pointers are only dereferenced while the borrowed buffers they come from are alive
// (inside `sgemm_packed`), and concurrent workers write disjoint parts of `c`.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

#[cfg(target_arch = "x86_64")]
mod mm {
    use super::*;

    /// An `MR × 8·NV` block of C from `k` steps: one packed B row is loaded per step and multiplied
    /// by MR broadcast elements of A; the accumulators stay in registers. Only the first `cols`
    /// columns are stored (the rest belong to the panel's zero padding).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const MR: usize, const NV: usize>(
        k: usize,
        a: *const f32,
        a_rs: usize,
        a_cs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        cols: usize,
    ) {
        unsafe {
            let mut r = [[_mm256_setzero_ps(); NV]; MR];
            let (mut ap, mut bp) = (a, b);
            for _ in 0..k {
                let mut bv = [_mm256_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(bp.add(8 * v));
                }
                for (i, ri) in r.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*ap.add(i * a_rs));
                    for (x, bx) in ri.iter_mut().zip(&bv) {
                        *x = _mm256_fmadd_ps(av, *bx, *x);
                    }
                }
                ap = ap.add(a_cs);
                bp = bp.add(8 * NV);
            }
            for (i, ri) in r.iter().enumerate() {
                let row = c.add(i * ldc);
                if cols == 8 * NV {
                    for (v, x) in ri.iter().enumerate() {
                        let p = row.add(8 * v);
                        let y = if accumulate {
                            _mm256_add_ps(_mm256_loadu_ps(p), *x)
                        } else {
                            *x
                        };
                        _mm256_storeu_ps(p, y);
                    }
                } else {
                    let mut buf = [0f32; 16];
                    for (v, x) in ri.iter().enumerate() {
                        _mm256_storeu_ps(buf.as_mut_ptr().add(8 * v), *x);
                    }
                    for (q, &y) in buf.iter().take(cols).enumerate() {
                        let p = row.add(q);
                        *p = if accumulate { *p + y } else { y };
                    }
                }
            }
        }
    }

    /// Dispatches one `mr × w` tile (`mr ≤ 6`, `w` 8 or 16) to its monomorphised kernel.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_dyn(
        mr: usize,
        w: usize,
        k: usize,
        a: *const f32,
        a_rs: usize,
        a_cs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        cols: usize,
    ) {
        macro_rules! go {
            ($mr:literal, $nv:literal) => {
                tile::<$mr, $nv>(k, a, a_rs, a_cs, b, c, ldc, accumulate, cols)
            };
        }
        unsafe {
            match (mr, w) {
                (6, 16) => go!(6, 2),
                (5, 16) => go!(5, 2),
                (4, 16) => go!(4, 2),
                (3, 16) => go!(3, 2),
                (2, 16) => go!(2, 2),
                (1, 16) => go!(1, 2),
                (6, _) => go!(6, 1),
                (5, _) => go!(5, 1),
                (4, _) => go!(4, 1),
                (3, _) => go!(3, 1),
                (2, _) => go!(2, 1),
                _ => go!(1, 1),
            }
        }
    }

    /// Columns `j0..j1` (panel boundaries), panel by panel: each packed panel is reused from the
    /// L1 cache by every row tile. For operands A small enough to stay cached.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn by_panels(g: Job, j0: usize, j1: usize) {
        unsafe {
            let mut j = j0;
            while j < j1 {
                let w = panel_width(g.n - j);
                let cols = w.min(g.n - j);
                let mut i = 0;
                while i < g.m {
                    let mr = (g.m - i).min(6);
                    tile_dyn(
                        mr,
                        w,
                        g.k,
                        g.a.add(i * g.a_rs),
                        g.a_rs,
                        g.a_cs,
                        g.b.add(j * g.k),
                        g.c.add(i * g.ldc + j),
                        g.ldc,
                        g.accumulate,
                        cols,
                    );
                    i += mr;
                }
                j += w;
            }
        }
    }

    /// Rows `i0..i1`, for long reductions: the reduction is cut into blocks of `KC` steps; for
    /// each block, the rows' slice of A is packed tile by tile (6 rows, contiguous per step, read
    /// from A in its fast direction), then every tile is multiplied with every panel, so a packed
    /// A tile is reused from the L1 cache by all panels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn by_rows(g: Job, i0: usize, i1: usize) {
        const KC: usize = 256;
        let rows = i1 - i0;
        let tiles = rows.div_ceil(6);
        ABUF.with(|cell| {
            let mut abuf = cell.borrow_mut();
            let need = tiles * 6 * KC.min(g.k);
            if abuf.len() < need {
                abuf.resize(need, 0.0);
            }
            let mut kb = 0;
            while kb < g.k {
                let kc = KC.min(g.k - kb);
                // Tile t holds rows i0+6t.. as [p][r], r < its height.
                let height = |t: usize| (rows - 6 * t).min(6);
                unsafe {
                    let dst = abuf.as_mut_ptr();
                    if g.a_rs == 1 {
                        // A's columns are contiguous: each tile takes 6 consecutive elements per step.
                        for p in 0..kc {
                            let src = g.a.add((kb + p) * g.a_cs + i0);
                            for t in 0..tiles {
                                let (h, s, d) = (height(t), src.add(6 * t), dst.add(t * 6 * kc));
                                if h == 6 {
                                    for r in 0..6 {
                                        *d.add(p * 6 + r) = *s.add(r);
                                    }
                                } else {
                                    for r in 0..h {
                                        *d.add(p * h + r) = *s.add(r);
                                    }
                                }
                            }
                        }
                    } else {
                        for i in 0..rows {
                            let (t, r) = (i / 6, i % 6);
                            let (src, h) = (g.a.add((i0 + i) * g.a_rs + kb * g.a_cs), height(t));
                            let d = dst.add(t * 6 * kc + r);
                            for p in 0..kc {
                                *d.add(p * h) = *src.add(p * g.a_cs);
                            }
                        }
                    }
                    for t in 0..tiles {
                        let (i, mr) = (i0 + 6 * t, height(t));
                        let mut j = 0;
                        while j < g.n {
                            let w = panel_width(g.n - j);
                            tile_dyn(
                                mr,
                                w,
                                kc,
                                abuf.as_ptr().add(t * 6 * kc),
                                1,
                                mr,
                                g.b.add(j * g.k + kb * w),
                                g.c.add(i * g.ldc + j),
                                g.ldc,
                                g.accumulate || kb > 0,
                                w.min(g.n - j),
                            );
                            j += w;
                        }
                    }
                }
                kb += kc;
            }
        });
    }

    thread_local! {
        /// Packing space for [`by_rows`], kept per thread between calls.
        static ABUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
}

/// `c[m×n] (+)= a[m×k] · b`, `b` packed (`k × n`); `a` has strides `(a_rs, a_cs)`, `c` is
/// row-major with row stride `ldc` and is overwritten unless `accumulate`. Products of at least
/// `parallel_from` multiply-adds are split over two rayon tasks.
///
/// Returns `false` (doing nothing) without AVX2/FMA.
///
/// # Panics
/// If a slice is too short for the sizes and strides, or `b` has other sizes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_packed(
    m: usize,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    parallel_from: usize,
) -> bool {
    let (n, k) = (b.n, b.k);
    if !available() {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    assert!((m - 1) * ldc + n <= c.len(), "sgemm: c too short");
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|r| c[r * ldc..r * ldc + n].fill(0.0));
        }
        return true;
    }
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "sgemm: a too short"
    );
    let g = Job {
        m,
        n,
        k,
        a: a.as_ptr(),
        a_rs,
        a_cs,
        b: b.data.as_ptr(),
        c: c.as_mut_ptr(),
        ldc,
        accumulate,
    };
    #[cfg(target_arch = "x86_64")]
    {
        let par = m * n * k >= parallel_from && rayon::current_num_threads() > 1;
        // A that fits in the L1 cache is read in place, panel by panel; larger A is packed by row
        // tiles.
        // SAFETY: AVX2/FMA are available; the assertions above bound every access of `a` and
        // `c`, and `b` was packed for these sizes; parallel tasks write disjoint columns or rows
        // of `c`, which stays exclusively borrowed until both end.
        unsafe {
            if m * k <= 8192 {
                let half = (n / 2).div_ceil(16) * 16;
                if par && half < n {
                    rayon::join(|| mm::by_panels(g, 0, half), || mm::by_panels(g, half, n));
                } else {
                    mm::by_panels(g, 0, n);
                }
            } else {
                let half = (m / 2).div_ceil(6) * 6;
                if par && half < m {
                    rayon::join(|| mm::by_rows(g, 0, half), || mm::by_rows(g, half, m));
                } else {
                    mm::by_rows(g, 0, m);
                }
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, parallel_from);
        false
    }
}

#[cfg(test)]
/// [`sgemm_packed`] with `b` given by strides `(b_rs, b_cs)` (packed on the fly).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    parallel_from: usize,
) -> bool {
    available()
        && sgemm_packed(
            m,
            a,
            a_strides,
            &PackedB::new(b, b_strides, k, n),
            c,
            ldc,
            accumulate,
            parallel_from,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_std() {
        if !available() {
            return;
        }
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.01 + 0.003).collect();
        let mut s = xs.clone();
        let mut t = xs.clone();
        assert!(sigmoid_inplace(&mut s) && tanh_inplace(&mut t));
        for (k, &x) in xs.iter().enumerate() {
            let (xd, sd, td) = (x as f64, s[k] as f64, t[k] as f64);
            let want_s = 1.0 / (1.0 + (-xd).exp());
            assert!(
                (sd - want_s).abs() <= 2e-7 * want_s.max(1e-30) + 1e-38,
                "sigmoid({x})"
            );
            assert!(
                (td - xd.tanh()).abs() <= 3e-7 * xd.tanh().abs() + 1e-38,
                "tanh({x})"
            );
        }
        let mut edge = vec![
            0.0f32,
            -0.0,
            1e-30,
            -1e-8,
            100.0,
            -100.0,
            1e4,
            -1e4,
            f32::NAN,
        ];
        let mut e2 = edge.clone();
        tanh_inplace(&mut edge);
        sigmoid_inplace(&mut e2);
        assert_eq!(&edge[..8], &[0.0, -0.0, 1e-30, -1e-8, 1.0, -1.0, 1.0, -1.0]);
        assert_eq!(&e2[..4], &[0.5, 0.5, 0.5, 0.5]);
        assert!(e2[4] == 1.0 && e2[5] < 1e-37 && e2[6] == 1.0 && e2[7] < 1e-37);
        assert!(edge[8].is_nan() && e2[8].is_nan());
    }

    #[test]
    fn sgemm_matches_naive() {
        if !available() {
            return;
        }
        // (m, n, k, A transposed, B transposed), each with the product split over two rayon tasks
        // (parallel_from 0) and not.
        let cases = [
            (1, 8, 1, false, false),
            (16, 512, 128, false, true),
            (7, 40, 13, true, false),
            (13, 24, 9, false, false),
            (37, 64, 50, true, true),
            (9, 12, 7, false, false),
            (20, 3, 500, true, false),
            (2, 25, 5000, true, true),
        ];
        for par in [0, usize::MAX] {
            crate::backend::cpu::gemm::check::against_naive(
                &cases,
                |dims, a, sa, b, sb, c, ldc, acc| {
                    assert!(sgemm(dims, a, sa, b, sb, c, ldc, acc, par));
                },
            );
        }
    }
}

#[cfg(test)]
mod probe {
    /// Development probe: `cargo test --release -p nabla --lib probe_sgemm -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn probe_sgemm() {
        use crate::backend::cpu::gemm::Parallelism;
        use std::time::Instant;
        let shapes: &[(&str, usize, usize, usize, bool)] = &[
            ("fwd step h@Wt", 16, 512, 128, false),
            ("bwd step dpre@W", 16, 128, 512, false),
            ("dW dpre^T@h", 512, 128, 800, true),
            ("xproj x@Wih^T", 800, 512, 32, false),
            ("dWih dpre^T@x", 512, 32, 800, true),
        ];
        for &(name, m, n, k, ta) in shapes {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut c = vec![0.0f32; m * n];
            let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
            let pb = super::PackedB::new(&b, (n, 1), k, n);
            let reps = (20_000_000 / (m * n * k)).max(2);
            for par in [usize::MAX, 1 << 18] {
                let mut best = f64::MAX;
                for _ in 0..100 {
                    let t = Instant::now();
                    for _ in 0..reps {
                        super::sgemm_packed(m, &a, (a_rs, a_cs), &pb, &mut c, n, false, par);
                    }
                    best = best.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                let mut best_g = f64::MAX;
                for _ in 0..100 {
                    let t = Instant::now();
                    for _ in 0..reps {
                        unsafe {
                            crate::backend::cpu::gemm::crate_gemm(
                                (m, n, k),
                                c.as_mut_ptr(),
                                n,
                                false,
                                a.as_ptr(),
                                (a_rs, a_cs),
                                b.as_ptr(),
                                (n, 1),
                                if par == usize::MAX {
                                    Parallelism::None
                                } else {
                                    Parallelism::Rayon(2)
                                },
                            )
                        };
                    }
                    best_g = best_g.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                let gf = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
                println!(
                    "{name:<18} {m}x{k}@{k}x{n} par={}: ours {:8.1} us ({:5.1} GF/s)  gemm crate {:8.1} us ({:5.1} GF/s)",
                    par != usize::MAX,
                    best * 1e6,
                    gf(best),
                    best_g * 1e6,
                    gf(best_g)
                );
            }
        }
    }
}
