//! What this build of nabla uses on this host: the CPU features detected at run time and the
//! kernels chosen from them (printed by `nabla-bench --host`, recorded by the harness).

use serde_json::{Value, json};

/// The x86 features nabla and its `gemm` dependency look at, as detected at run time.
#[cfg(target_arch = "x86_64")]
fn features() -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => {$(
            if std::is_x86_feature_detected!($f) {
                out.push($f);
            }
        )*};
    }
    probe!(
        "sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"
    );
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn features() -> Vec<&'static str> {
    Vec::new()
}

/// One JSON object: detected features, the kernel each part of nabla dispatches to, the allocator,
/// and the features the binary was compiled for (the baseline every x86-64 host has, unless
/// RUSTFLAGS set a target CPU).
pub fn host_info() -> Value {
    let f = features();
    let has = |x: &str| f.contains(&x);
    // The same rule as crates/nabla/src/backend/cpu/gemm.rs.
    let matmul = if has("avx512f") {
        "gemm 0.19 avx512f kernels (x86-v4)"
    } else if has("avx2") && has("fma") {
        "f32 from 2^18 multiply-adds (every side >= 32): nabla's blocked AVX2+FMA kernel (backend/cpu/sgemm_avx2.rs); f64 and smaller f32: gemm 0.19 fma kernels (x86-v3)"
    } else if has("fma") {
        "gemm 0.19 fma kernels (x86-v3: AVX2+FMA)"
    } else {
        "gemm 0.19 scalar kernels"
    };
    let optim = if has("avx2") {
        "AVX2 build of the update rules"
    } else {
        "portable build"
    };
    let lstm = if has("avx2") && has("fma") {
        "packed AVX2+FMA micro-kernel (backend/cpu/rnn/simd.rs)"
    } else {
        "gemm"
    };
    let compiled: Vec<&str> = [
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    json!({
        "impl": "nabla",
        "detected_features": f,
        "compiled_target_features": compiled,
        "kernels": {"matmul/conv": matmul, "optimisers": optim, "lstm": lstm},
        "allocator": if cfg!(feature = "mimalloc") { "mimalloc" } else { "system (glibc malloc)" },
        "version": env!("CARGO_PKG_VERSION"),
    })
}
