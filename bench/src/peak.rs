//! The host's measured peak f32 throughput: every thread runs independent fused multiply-adds on
//! the widest vectors the CPU has (AVX-512 or AVX2+FMA, detected at run time), with enough
//! independent accumulators to hide the FMA latency, so the figure is what the cores really
//! sustain at the clock they run at now (boost included), not a nominal clock from /proc/cpuinfo.
//! The matmul table reports nabla's and PyTorch's GFLOP/s as shares of it.
//!
//! A second probe, [`kernel_loop`], runs the inner loop of an AVX2 matrix-product micro-kernel
//! (a 6×16 tile: per step two vector loads, six broadcasts and twelve FMAs, the instruction mix
//! of the AVX2 kernels of `gemm`, BLIS and MKL) on panels that stay in the L1 cache. A matrix
//! product built on such a loop cannot run faster than the loop alone, so it shows how much of
//! the peak the host lets a GEMM reach at that moment: on a shared host, another tenant's thread on the same physical core
//! takes load and dispatch slots that the FMA-only probe never needs.

use std::time::Instant;

/// Floating-point operations one call of the probe performs per thread.
const ITERS: usize = 20_000_000;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 12 independent 8-lane FMA chains (4-cycle latency × 2 pipes needs 8). Returns the flops.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iters: usize) -> (f64, f32) {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        let mut out = [0f32; 8];
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        ((iters * 12 * 8 * 2) as f64, out.iter().sum())
    }

    /// The same with 16-lane AVX-512 vectors.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iters: usize) -> (f64, f32) {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        ((iters * 12 * 16 * 2) as f64, _mm512_reduce_add_ps(s))
    }
}

/// Depth of the L1-resident panels of [`kernel_loop`]: 6×256 + 16×256 floats = 22 KiB.
const KC: usize = 256;

#[cfg(target_arch = "x86_64")]
mod x86_loop {
    use super::KC;
    use std::arch::x86_64::*;

    /// `reps` passes of a 6×16 micro-kernel over `a` (KC steps of 6 values) and `b` (KC steps of
    /// 16 values), accumulating in twelve registers. Returns the flops and a value that depends
    /// on all of them.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile6x16(a: &[f32], b: &[f32], reps: usize) -> (f64, f32) {
        assert!(a.len() >= 6 * KC && b.len() >= 16 * KC);
        let mut c = [_mm256_setzero_ps(); 12];
        for _ in 0..reps {
            let (mut pa, mut pb) = (a.as_ptr(), b.as_ptr());
            // Unrolled four times, as nabla's kernel (backend/cpu/sgemm_avx2.rs) and those of
            // BLIS and MKL are: the rolled loop runs ~10 % slower on Zen 3.
            for _ in 0..KC / 4 {
                for u in 0..4 {
                    // SAFETY: the assert above keeps pa + 6·KC and pb + 16·KC inside the slices.
                    unsafe {
                        let b0 = _mm256_loadu_ps(pb.add(16 * u));
                        let b1 = _mm256_loadu_ps(pb.add(16 * u + 8));
                        for r in 0..6 {
                            let x = _mm256_broadcast_ss(&*pa.add(6 * u + r));
                            c[2 * r] = _mm256_fmadd_ps(x, b0, c[2 * r]);
                            c[2 * r + 1] = _mm256_fmadd_ps(x, b1, c[2 * r + 1]);
                        }
                    }
                }
                // SAFETY: as above (KC is a multiple of 4).
                unsafe {
                    pa = pa.add(24);
                    pb = pb.add(64);
                }
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in c {
            s = _mm256_add_ps(s, x);
        }
        let mut out = [0f32; 8];
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        ((reps * KC * 12 * 8 * 2) as f64, out.iter().sum())
    }
}

/// The best of `trials` runs (about 30 ms each) of the AVX2 micro-kernel loop on `threads`
/// threads, each on its own L1-resident panels, in GFLOP/s. `None` without AVX2+FMA.
pub fn kernel_loop(threads: usize, trials: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return None;
        }
        let reps = 50_000;
        let mut best = 0.0f64;
        for _ in 0..trials.max(1) {
            let t = Instant::now();
            let flops: f64 = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads.max(1))
                    .map(|i| {
                        s.spawn(move || {
                            let a: Vec<f32> =
                                (0..6 * KC).map(|j| 1e-3 * (i + j % 7) as f32).collect();
                            let b: Vec<f32> = (0..16 * KC).map(|j| 1e-3 * (j % 5) as f32).collect();
                            // SAFETY: AVX2 and FMA were detected above.
                            let (f, v) = unsafe { x86_loop::tile6x16(&a, &b, reps) };
                            std::hint::black_box(v);
                            f
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
        }
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (threads, trials);
        None
    }
}

/// One thread's probe: flops done and a value that depends on all of them (kept observable).
fn probe(iters: usize) -> Option<(f64, f32, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            let (f, v) = unsafe { x86::fma512(iters) };
            return Some((f, v, "AVX-512 FMA, 16 f32 lanes"));
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected at run time.
            let (f, v) = unsafe { x86::fma256(iters) };
            return Some((f, v, "AVX2 FMA, 8 f32 lanes"));
        }
    }
    let _ = iters;
    None
}

/// The measured peak on `threads` threads: the best of `trials` runs of about 35 ms each (at 3.5 GHz), in
/// GFLOP/s, with the kind of vector used. `None` where no FMA vector unit was detected.
pub fn measured_peak(threads: usize, trials: usize) -> Option<(f64, &'static str)> {
    let mut best = 0.0f64;
    let mut kind = "";
    for _ in 0..trials.max(1) {
        let t = Instant::now();
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(|| probe(ITERS)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let dt = t.elapsed().as_secs_f64();
        let mut flops = 0.0;
        for r in results {
            let (f, v, k) = r?;
            std::hint::black_box(v);
            flops += f;
            kind = k;
        }
        best = best.max(flops / dt / 1e9);
    }
    Some((best, kind))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernel_loop_computes_the_tile_product() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        use super::KC;
        let a: Vec<f32> = (0..6 * KC)
            .map(|j| ((j * 7) % 11) as f32 * 0.125 - 0.5)
            .collect();
        let b: Vec<f32> = (0..16 * KC)
            .map(|j| ((j * 5) % 13) as f32 * 0.0625 - 0.25)
            .collect();
        // the sum of every element of the 6×16 tile Σ_p a[p, r] b[p, j], twice (two passes)
        let want: f64 = (0..KC)
            .map(|p| {
                let sa: f64 = a[p * 6..p * 6 + 6].iter().map(|&x| x as f64).sum();
                let sb: f64 = b[p * 16..p * 16 + 16].iter().map(|&x| x as f64).sum();
                sa * sb
            })
            .sum::<f64>()
            * 2.0;
        // SAFETY: AVX2 and FMA were detected above.
        let (flops, got) = unsafe { super::x86_loop::tile6x16(&a, &b, 2) };
        assert_eq!(flops, (2 * KC * 6 * 16 * 2) as f64);
        assert!(
            (got as f64 - want).abs() < 1e-3 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        assert!(super::kernel_loop(1, 1).is_some_and(|g| g > 0.0));
    }
}
