//! The one call site of the `gemm` project's kernels (`gemm_f32`, `gemm_f64`, through
//! [`crate_gemm`]): a bounds-checked, strided `dst (+)= a · b` used by the matrix product, the
//! convolution kernels and the recurrent layers' non-`f32` path. Tiny products run as a plain
//! loop, below the crate's dispatch cost; `f32` products from 64³ multiply-adds on AVX2 hosts
//! without AVX-512 run in nabla's own blocked kernel ([`super::sgemm_avx2`]), which is faster
//! there than the crate's AVX2 path.

use super::sgemm_avx2;
use crate::dtype::{DType, Element};

/// Below this many multiply-adds a plain loop beats gemm's dispatch.
pub(crate) const SMALL_GEMM: usize = 4096;

/// A matrix inside a buffer: element `(r, c)` is `buf[off + r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub(crate) buf: &'a [T],
    pub(crate) off: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// The whole slice `buf` from `off`, with strides `(rs, cs)`.
    pub(crate) fn new(buf: &'a [T], off: usize, (rs, cs): (usize, usize)) -> Self {
        Mat { buf, off, rs, cs }
    }
    /// The transposed matrix (a view: strides swapped).
    pub(crate) fn t(self) -> Mat<'a, T> {
        Mat {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
    /// The same matrix `off` elements further into the buffer.
    pub(crate) fn at(self, off: usize) -> Mat<'a, T> {
        Mat {
            off: self.off + off,
            ..self
        }
    }
}

/// `dst (+)= a · b` for an `m×k` `a` and a `k×n` `b`, into the row-major `m×n` block `dst` (row
/// stride `dst_rs`). With `accumulate` the product is added to `dst`, else it overwrites it. With
/// `threaded`, the `gemm` crate runs on every rayon thread.
///
/// # Panics
/// If an operand's strides address an element outside its buffer, or `dst` is too short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    threaded: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "internal: gemm destination too small"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::zero());
            }
        }
        return;
    }
    let last =
        |x: Mat<'_, T>, rows: usize, cols: usize| x.off + (rows - 1) * x.rs + (cols - 1) * x.cs;
    assert!(
        last(a, m, k) < a.buf.len() && last(b, k, n) < b.buf.len(),
        "internal: gemm operand out of bounds"
    );
    if m * n * k <= SMALL_GEMM {
        for r in 0..m {
            for c in 0..n {
                let mut acc = T::zero();
                for x in 0..k {
                    acc += a.buf[a.off + r * a.rs + x * a.cs] * b.buf[b.off + x * b.rs + c * b.cs];
                }
                let d = &mut dst[r * dst_rs + c];
                *d = if accumulate { *d + acc } else { acc };
            }
        }
        return;
    }
    if T::DTYPE == DType::F32
        && m * n * k >= sgemm_avx2::FROM_MADDS
        && m.min(n).min(k) >= sgemm_avx2::MIN_SIDE
        && sgemm_avx2::available()
    {
        let threads = if threaded {
            rayon::current_num_threads()
        } else {
            1
        };
        // SAFETY: T is f32 (its DTYPE says so, and the trait is sealed), the asserts above put
        // every addressed element inside its buffer, and `dst` is an exclusive borrow, so it
        // overlaps neither operand.
        unsafe {
            sgemm_avx2::sgemm(
                (m, n, k),
                a.buf.as_ptr().add(a.off).cast::<f32>(),
                (a.rs, a.cs),
                b.buf.as_ptr().add(b.off).cast::<f32>(),
                (b.rs, b.cs),
                dst.as_mut_ptr().cast::<f32>(),
                dst_rs,
                accumulate,
                threads,
            );
        }
        return;
    }
    let par = if threaded && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above check that the last element each operand's strides address lies in
    // its buffer (strides are non-negative, so every other element does too), and that `dst`, an
    // exclusive borrow, holds the m×n block with row stride dst_rs.
    unsafe {
        crate_gemm(
            (m, n, k),
            dst.as_mut_ptr(),
            dst_rs,
            accumulate,
            a.buf.as_ptr().add(a.off),
            (a.rs, a.cs),
            b.buf.as_ptr().add(b.off),
            (b.rs, b.cs),
            par,
        );
    }
}

pub(crate) use gemm_common::Parallelism;

/// `dst (+)= a · b` through the `gemm` project's kernels for `T` (`gemm_f32` or `gemm_f64`, chosen
/// at run time for the CPU: AVX-512, AVX2+FMA or portable), with row-major `dst` (row stride
/// `dst_rs`) and `(row, column)` strides for `a` and `b`.
///
/// # Safety
/// Every element the sizes and strides address must lie inside its buffer, and `dst`'s `m × n`
/// block must overlap neither operand.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn crate_gemm<T: Element>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    a: *const T,
    (a_rs, a_cs): (usize, usize),
    b: *const T,
    (b_rs, b_cs): (usize, usize),
    par: Parallelism,
) {
    // gemm's arguments: dst (+ column and row strides), whether to read dst, lhs and rhs (column
    // stride first), alpha (dst's factor), beta (the product's), three conjugation flags unused
    // for real types, and the parallelism.
    let (dst_rs, a_rs, a_cs, b_rs, b_cs) = (
        dst_rs as isize,
        a_rs as isize,
        a_cs as isize,
        b_rs as isize,
        b_cs as isize,
    );
    // One call for either kernel: the literals take the kernel's element type, and the pointer
    // casts are identities (T's DTYPE names its type; Element is implemented for f32 and f64 only).
    macro_rules! call {
        ($kernel:expr) => {
            $kernel(
                m,
                n,
                k,
                dst.cast(),
                1,
                dst_rs,
                accumulate,
                a.cast(),
                a_cs,
                a_rs,
                b.cast(),
                b_cs,
                b_rs,
                if accumulate { 1.0 } else { 0.0 },
                1.0,
                false,
                false,
                false,
                par,
            )
        };
    }
    // SAFETY: the caller's contract.
    unsafe {
        match T::DTYPE {
            DType::F32 => call!(gemm_f32::gemm::f32::get_gemm_fn()),
            DType::F64 => call!(gemm_f64::gemm::f64::get_gemm_fn()),
        }
    }
}

/// Test support shared by the `f32` kernels (`sgemm_avx2`, the recurrent layers' micro-kernel).
#[cfg(test)]
pub(crate) mod check {
    /// A product size `(m, n, k)` and whether A and B are read transposed.
    pub(crate) type Case = (usize, usize, usize, bool, bool);

    /// Runs `kernel((m, n, k), a, a_strides, b, b_strides, c, ldc, accumulate)` for every case,
    /// with and without accumulation, on random operands with padded strides, and checks every
    /// element of `c` (the `m × n` block, and the padding past `n` untouched) against an `f64`
    /// product.
    #[allow(clippy::type_complexity)]
    pub(crate) fn against_naive(
        cases: &[Case],
        mut kernel: impl FnMut(
            (usize, usize, usize),
            &[f32],
            (usize, usize),
            &[f32],
            (usize, usize),
            &mut [f32],
            usize,
            bool,
        ),
    ) {
        let mut state = 7u32;
        let mut rnd = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, n, k, ta, tb) in cases {
            for acc in [false, true] {
                let (a_rs, a_cs) = if ta { (1, m + 1) } else { (k + 2, 1) };
                let (b_rs, b_cs) = if tb { (1, k + 3) } else { (n + 1, 1) };
                let a: Vec<f32> = (0..(m + 1) * (k + 2)).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..(n + 1) * (k + 3)).map(|_| rnd()).collect();
                let ldc = n + 4;
                let c0: Vec<f32> = (0..m * ldc).map(|_| rnd()).collect();
                let mut c = c0.clone();
                kernel(
                    (m, n, k),
                    &a,
                    (a_rs, a_cs),
                    &b,
                    (b_rs, b_cs),
                    &mut c,
                    ldc,
                    acc,
                );
                for i in 0..m {
                    for j in 0..ldc {
                        let want = if j < n {
                            let dot: f64 = (0..k)
                                .map(|p| {
                                    a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j * b_cs] as f64
                                })
                                .sum();
                            dot + if acc { c0[i * ldc + j] as f64 } else { 0.0 }
                        } else {
                            c0[i * ldc + j] as f64
                        };
                        let got = c[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{m}x{n}x{k} ta={ta} tb={tb} acc={acc} at {i},{j}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
