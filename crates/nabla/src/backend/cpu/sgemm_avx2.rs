//! A blocked `f32` matrix product for AVX2+FMA hosts, laid out as in BLIS and GotoBLAS: the
//! reduction is cut into blocks of at most `KC_MAX` steps and C's columns into slices of `NC`; for
//! each pair, B's `kc × nc` slice is packed once into 16-column panels (shared by all threads,
//! kept in L2/L3), then the calling thread and the rayon workers take C's row blocks from a shared
//! counter, each packing its block's `mc × kc` slice of A into 6-row tiles (kept in its core's L2)
//! and computing 6×16 register tiles from one A tile and one B panel (the panel stays in L1 while
//! the block's A tiles pass by). Nothing is packed twice, the caller starts at once, and a worker
//! that starts late still takes the blocks that are left.
//!
//! Measured on the reference host (AMD Zen 3, 2 cores, AVX2, see BENCHMARKS.md), it runs a 1024³
//! product 1.2-1.4x faster than the `gemm` crate's AVX2 path; hosts with AVX-512 keep `gemm`'s
//! 16-lane kernels (see [`available`]).

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

/// Products with at least this many multiply-adds (2¹⁸, e.g. 64³), and every side at least
/// [`MIN_SIDE`], use this kernel; smaller ones go to `gemm`. Measured on the reference host
/// (2026-12-02, `probe_blocked_sgemm` and interleaved `nabla-bench` processes), this kernel was
/// faster than `gemm`'s AVX2 path from 32³ up on one thread (1.1-1.5x) and at most shapes on two
/// (at 64³ and 64×32×128 the probe's two-thread figure fell to 0.65-0.87x in some runs), and it
/// sped up `nabla-bench matmul` 1.4-2.1x at n = 64-128 and 1.3x at 256, mlp-step at batch 128
/// 1.1x, cnn-step 1.0-1.1x and conv2d 1.1x. (Until then the bound was 2²⁵, set when earlier
/// versions of the kernel swung between 0.7x and 1.6x at 128³-256³.)
pub(crate) const FROM_MADDS: usize = 1 << 18;
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
/// unless `accumulate`; on the calling thread and up to `threads - 1` rayon workers.
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
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees AVX2+FMA, the operands' bounds and that C overlaps neither.
    unsafe {
        blocked(job, m, n, threads.max(1))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (job, m, n, threads);
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Packing space for the A blocks a thread computes with, kept between calls.
    static A_PACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Packing space for the B slices of the products a thread calls, kept between calls.
    static B_PACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A packing buffer of at least `len` floats whose first element is 64-byte aligned (so that no
/// vector load of a panel straddles two cache lines): the thread's kept buffer, or a new one when
/// that is in use (a product started while this thread waited inside another).
#[cfg(target_arch = "x86_64")]
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let run = |v: &mut Vec<f32>| {
        if v.len() < len + 16 {
            v.resize(len + 16, 0.0);
        }
        let skip = v.as_ptr().align_offset(64).min(16);
        f(&mut v[skip..skip + len])
    };
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => run(&mut v),
        Err(_) => run(&mut Vec::new()),
    })
}

/// Raw pointer to the shared packed B slice, read by every task of a product.
#[derive(Clone, Copy)]
struct Packed(*mut f32);
// SAFETY: written only between task regions (by disjoint row ranges), read-only inside them.
unsafe impl Send for Packed {}
unsafe impl Sync for Packed {}

/// The product, loop by loop: for each `NC`-column slice and `KC`-step block of the reduction,
/// B's slice is packed once (its rows split over the threads when it is large), then the row
/// blocks of C are computed through [`share`], each packing its own `mc × kc` block of A.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked(g: Job, m: usize, n: usize, threads: usize) {
    let kc = g.k.div_ceil(g.k.div_ceil(KC_MAX)).div_ceil(4) * 4;
    // Row blocks of at most MC rows, at least two per thread and as many as a multiple of the
    // threads, so that they share evenly and a late thread still finds some; if there are fewer
    // blocks than threads, the columns are split too.
    let mut blocks = m.div_ceil(MC);
    if threads > 1 {
        blocks = blocks.max(2 * threads).div_ceil(threads) * threads;
    }
    let mc = m.div_ceil(blocks).div_ceil(MR) * MR;
    let blocks = m.div_ceil(mc);
    let col_groups = threads.div_ceil(blocks).max(1);
    let nc_max = NC.min(n);
    with_buffer(&B_PACK, nc_max.div_ceil(NR) * NR * kc, |bbuf| {
        let bp = Packed(bbuf.as_mut_ptr());
        let mut jc = 0;
        while jc < n {
            let nc = nc_max.min(n - jc);
            let panels = nc.div_ceil(NR);
            let mut pc = 0;
            while pc < g.k {
                let kcur = kc.min(g.k - pc);
                let acc = g.accumulate || pc > 0;
                // Slices under 256 KiB are packed by one thread: a parallel region costs more
                // (128 × 128: -5 % when split; 256 × 256: +4-9 %, interleaved runs on 2 threads).
                let par_pack = threads > 1 && kcur * nc >= 1 << 16;
                let step = if par_pack {
                    kcur.div_ceil(threads)
                } else {
                    kcur
                };
                let packers = if par_pack { threads } else { 1 };
                share(packers, kcur.div_ceil(step), |t| {
                    let rows = (t * step, (t * step + step).min(kcur));
                    // SAFETY: these rows of the slice's panels lie in bbuf; B is in bounds.
                    unsafe { pack_b(g, pc, kcur, rows, jc, nc, { bp }.0) };
                });
                let task = |t: usize| {
                    let (ib, jg) = (t / col_groups, t % col_groups);
                    let per = panels.div_ceil(col_groups);
                    let (p0, p1) = (jg * per, ((jg + 1) * per).min(panels));
                    let i0 = ib * mc;
                    if p0 < p1 && i0 < m {
                        // SAFETY: the task's rows and panels are disjoint from every other's.
                        unsafe {
                            row_block(
                                g,
                                (i0, mc.min(m - i0)),
                                (pc, kcur),
                                jc,
                                nc,
                                (p0, p1),
                                { bp }.0,
                                acc,
                            )
                        };
                    }
                };
                share(threads, blocks * col_groups, task);
                pc += kcur;
            }
            jc += nc;
        }
    });
}

/// Runs `f(0..tasks)` on the calling thread and up to `threads - 1` rayon workers, each taking
/// the next task from a shared counter until none is left. The caller starts at once, so the
/// product never waits for a sleeping worker to wake up (on a virtual machine that can take
/// longer than a small product); a worker that starts late takes whatever is left, or nothing.
#[cfg(target_arch = "x86_64")]
fn share(threads: usize, tasks: usize, f: impl Fn(usize) + Sync) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            if t >= tasks {
                break;
            }
            f(t);
        }
    };
    if threads <= 1 || tasks <= 1 {
        return work();
    }
    rayon::in_place_scope(|s| {
        for _ in 1..threads.min(tasks) {
            s.spawn(|_| work());
        }
        work();
    });
}

/// C's rows `i0..i0+mc`, panels `p0..p1` of the slice at column `jc` (`nc` wide), for the
/// reduction block `pc..pc+kc`: packs the rows of A, then runs the 6×16 kernel over every tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block(
    g: Job,
    (i0, mc): (usize, usize),
    (pc, kc): (usize, usize),
    jc: usize,
    nc: usize,
    (p0, p1): (usize, usize),
    bbuf: *const f32,
    acc: bool,
) {
    with_buffer(&A_PACK, mc.div_ceil(MR) * MR * kc, |abuf| {
        let mut tmp = [0f32; MR * NR];
        for (t, i) in (i0..i0 + mc).step_by(MR).enumerate() {
            let h = MR.min(i0 + mc - i);
            // SAFETY: tile t lies in abuf; A's elements are in bounds.
            unsafe { pack_a(g, pc, kc, i, h, abuf.as_mut_ptr().add(t * MR * kc)) };
        }
        for p in p0..p1 {
            let j = jc + p * NR;
            let w = NR.min(jc + nc - j);
            // SAFETY: panel p lies in the packed slice.
            let bp = unsafe { bbuf.add(p * NR * kc) };
            for (t, i) in (i0..i0 + mc).step_by(MR).enumerate() {
                let h = MR.min(i0 + mc - i);
                let ap = abuf[t * MR * kc..].as_ptr();
                // SAFETY: (i, j) is inside C's block; partial tiles go through tmp.
                unsafe {
                    let cp = g.c.add(i * g.ldc + j);
                    if h == MR && w == NR {
                        kernel(kc, ap, bp, cp, g.ldc, acc);
                    } else {
                        kernel(kc, ap, bp, tmp.as_mut_ptr(), NR, false);
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
    });
}

/// Packs rows `q0..q1` of the slice of B with rows `pc..pc+kc` and columns `jc..jc+nc`, stored as
/// 16-column panels of `kc` rows each (the last one zero-padded), reading B along its contiguous
/// direction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(
    g: Job,
    pc: usize,
    kc: usize,
    (q0, q1): (usize, usize),
    jc: usize,
    nc: usize,
    dst: *mut f32,
) {
    unsafe {
        let (full, rest) = (nc / NR, nc % NR);
        let src = g.b.add(pc * g.b_rs + jc * g.b_cs);
        let last = dst.add(full * NR * kc);
        if rest > 0 {
            for q in q0..q1 {
                std::ptr::write_bytes(last.add(q * NR + rest), 0, NR - rest);
            }
        }
        if g.b_cs == 1 {
            // Rows are contiguous: copy each one into every panel it crosses.
            for q in q0..q1 {
                let s = src.add(q * g.b_rs);
                for t in 0..full {
                    let (s, d) = (s.add(t * NR), dst.add(t * NR * kc + q * NR));
                    _mm256_storeu_ps(d, _mm256_loadu_ps(s));
                    _mm256_storeu_ps(d.add(8), _mm256_loadu_ps(s.add(8)));
                }
                for x in 0..rest {
                    *last.add(q * NR + x) = *s.add(full * NR + x);
                }
            }
        } else {
            // Columns are contiguous (B transposed) or neither: read each column along the
            // reduction.
            for x in 0..nc {
                let (s, d) = (src.add(x * g.b_cs), dst.add(x / NR * NR * kc + x % NR));
                for q in q0..q1 {
                    *d.add(q * NR) = *s.add(q * g.b_rs);
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
        if g.a_cs == 1 && h == MR {
            // Rows are contiguous: read the six in step, prefetching 256 bytes ahead in each
            // (memory latency, not the copy, is the cost of packing A).
            let rows: [*const f32; MR] = std::array::from_fn(|r| src.add(r * g.a_rs));
            for q in 0..kc {
                if q % 16 == 0 {
                    for row in rows {
                        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(q + 64) as *const i8);
                    }
                }
                for (r, row) in rows.iter().enumerate() {
                    *dst.add(q * MR + r) = *row.add(q);
                }
            }
        } else if g.a_cs == 1 {
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

/// Deterministic row-major test operands, `m × k` and `k × n`, with values in [-0.5, 0.5).
#[cfg(test)]
fn operands((m, n, k): (usize, usize, usize)) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5);
    let b = (0..k * n).map(|i| ((i * 53) % 97) as f32 / 97.0 - 0.5);
    (a.collect(), b.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path (full and partial tiles, each operand's fast and strided packing, several
    /// reduction blocks, the thread splits, accumulation) against an f64 reference.
    #[test]
    fn matches_a_naive_product() {
        if !available() {
            return;
        }
        // (m, n, k, A transposed, B transposed), on 1 to 3 threads.
        let cases = [
            (6, 16, 4, false, false),
            (7, 17, 5, false, false),
            (150, 40, 600, false, false),
            (150, 40, 600, true, true),
            (33, 1100, 70, false, true),
            (200, 35, 1030, true, false),
            (64, 64, 64, false, false),
            (1, 20, 3, true, true),
            // a B slice of 512 × 520 floats (over 256 KiB): packed by several threads
            (20, 520, 512, false, false),
            (20, 520, 512, true, true),
        ];
        for threads in 1..=3 {
            super::super::gemm::check::against_naive(&cases, |dims, a, sa, b, sb, c, ldc, acc| {
                // SAFETY: available() holds; the checker sizes a, b and c for their strides.
                unsafe {
                    sgemm(
                        dims,
                        a.as_ptr(),
                        sa,
                        b.as_ptr(),
                        sb,
                        c.as_mut_ptr(),
                        ldc,
                        acc,
                        threads,
                    )
                }
            });
        }
    }

    /// A large `f32` product through `gemm.rs` (which sends it here on AVX2 hosts without
    /// AVX-512), with a transposed operand, matches the `f64` product of the same values.
    #[test]
    fn large_f32_products_through_the_shared_entry_match_f64() {
        use super::super::gemm::{Mat, gemm};
        let (m, n, k) = (200, 410, 420);
        assert!(m * n * k >= FROM_MADDS);
        let (a, b) = operands((m, n, k));
        let (a64, b64): (Vec<f64>, Vec<f64>) = (
            a.iter().map(|&x| x as f64).collect(),
            b.iter().map(|&x| x as f64).collect(),
        );
        // b is stored transposed (n × k) and read through swapped strides.
        fn product<T: crate::dtype::Element>(
            a: &[T],
            b: &[T],
            (m, n, k): (usize, usize, usize),
        ) -> Vec<T> {
            let mut c = vec![T::zero(); m * n];
            gemm(
                m,
                n,
                k,
                &mut c,
                n,
                false,
                Mat::new(a, 0, (k, 1)),
                Mat::new(b, 0, (1, k)),
                true,
            );
            c
        }
        let (c, c64) = (product(&a, &b, (m, n, k)), product(&a64, &b64, (m, n, k)));
        for (x, y) in c.iter().zip(&c64) {
            assert!((*x as f64 - y).abs() < 1e-3, "{x} vs {y}");
        }
    }
}

#[cfg(test)]
mod probe {
    /// Development probe, this kernel against the `gemm` crate, calls interleaved in one process
    /// (so that both see the same host load): `cargo test --release -p nabla --lib
    /// probe_blocked_sgemm -- --ignored --nocapture`. Prints the median GFLOP/s of each over 30
    /// calls per size, on the rayon pool's threads and on one thread.
    #[test]
    #[ignore]
    fn probe_blocked_sgemm() {
        use crate::backend::cpu::gemm::Parallelism;
        use std::time::Instant;
        if !super::available() {
            return;
        }
        for (m, n, k) in [
            // the smallest products this kernel takes (FROM_MADDS), conv- and MLP-sized ones
            (64, 64, 64),
            (64, 32, 128),
            (96, 96, 96),
            (64, 121, 288),
            (128, 784, 128),
            (256, 256, 256),
            (512, 512, 512),
            (1024, 1024, 1024),
        ] {
            let (a, b) = super::operands((m, n, k));
            let mut c = vec![0f32; m * n];
            for threads in [rayon::current_num_threads(), 1] {
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                for it in 0..33 {
                    let t = Instant::now();
                    // SAFETY: available() holds; the row-major operands fit their buffers.
                    unsafe {
                        super::sgemm(
                            (m, n, k),
                            a.as_ptr(),
                            (k, 1),
                            b.as_ptr(),
                            (n, 1),
                            c.as_mut_ptr(),
                            n,
                            false,
                            threads,
                        )
                    };
                    let t1 = t.elapsed().as_secs_f64();
                    let par = if threads > 1 {
                        Parallelism::Rayon(threads)
                    } else {
                        Parallelism::None
                    };
                    let t = Instant::now();
                    // SAFETY: as above (the same operands and strides, through the gemm crate).
                    unsafe {
                        crate::backend::cpu::gemm::crate_gemm(
                            (m, n, k),
                            c.as_mut_ptr(),
                            n,
                            false,
                            a.as_ptr(),
                            (k, 1),
                            b.as_ptr(),
                            (n, 1),
                            par,
                        )
                    };
                    let t2 = t.elapsed().as_secs_f64();
                    if it >= 3 {
                        ours.push(t1);
                        theirs.push(t2);
                    }
                }
                let median = |v: &mut Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let flops = 2.0 * (m * n * k) as f64;
                let (g1, g2) = (
                    flops / median(&mut ours) / 1e9,
                    flops / median(&mut theirs) / 1e9,
                );
                println!(
                    "{m}x{n}x{k}, {threads} thread(s): sgemm_avx2 {g1:.1} GFLOP/s, gemm {g2:.1} GFLOP/s, ratio {:.2}",
                    g1 / g2
                );
            }
        }
    }
}
