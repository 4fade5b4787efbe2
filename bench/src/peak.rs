//! The host's measured peak f32 throughput: every thread runs independent fused multiply-adds on
//! the widest vectors the CPU has (AVX-512 or AVX2+FMA, detected at run time), with enough
//! independent accumulators to hide the FMA latency, so the figure is what the cores really
//! sustain at the clock they run at now (boost included), not a nominal clock from /proc/cpuinfo.
//! The matmul table reports nabla's and PyTorch's GFLOP/s as shares of it.

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
