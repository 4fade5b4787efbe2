//! The fused primitive behind [`Rnn`](super::Rnn), [`Lstm`](super::Lstm), [`Gru`](super::Gru) and
//! their cells: one recorded operation runs one layer over a whole sequence.
//!
//! Inputs, in this order: `x [T, B, I]` (any layout), `w_ih [G·H, I]`, `w_hh [G·H, H]`,
//! `b_ih [G·H]`, `b_hh [G·H]`, `h0 [B, H]` and, for the LSTM, `c0 [B, H]` (missing biases and states
//! are passed as zeros). The output is `[(T + S - 1)·B, H]`: first the hidden states of every step,
//! in rows ordered `(b, t)` (batch-major) or `(t, b)` (time-major), then, for the LSTM (S = 2
//! states), the last cell state `[B, H]`. So the caller's sequence output is a contiguous view in
//! either layout.
//!
//! - Forward: each step is one product `[x_t | h_{t-1}] · [W_ih | W_hh]ᵀ` (the input projection
//!   rides along, so the pre-activations are produced in the L1 cache of the core that uses them)
//!   and one fused elementwise pass (vectorised activations for `f32`). The gate activations are
//!   kept, detached, for the backward pass (like cuDNN's reserve space).
//! - Reverse rule, first order (when nothing records the backward pass): a fused
//!   backpropagation through time; per step one product `dgates_{t+1} · W_hh` and one elementwise
//!   pass, and every few steps (64 rows) a product `dgatesᵀ · [x_t | h_{t-1}]` that accumulates
//!   `[dW_ih | dW_hh]` while its operands are still in cache.
//! - Large steps split the hidden units in two halves run by two threads in lockstep (see
//!   [`run_steps`]); each thread owns its units' weight columns, packed once per call, and its
//!   rows of the weight gradients. Products use the AVX2 kernel of [`rnn_simd`] for `f32` and the
//!   `gemm` crate otherwise. Scratch and saved buffers are recycled per thread (see [`take`]).
//! - When the backward pass is itself recorded or carries forward-mode tangents (grad of grad,
//!   Hessian-vector products), and for the forward rule, the derivatives are those of
//!   [`reference()`], the same recurrence written with differentiable tensor operations, recomputed
//!   from the inputs (as [`checkpoint`](crate::checkpoint) does): so every order of derivative is
//!   exact.

use super::rnn_simd::{self, PackedB};
use crate::autodiff::{InputGrads, Op, record, state};
use crate::dtype::Element;
use crate::tensor::cpu::with_dtype;
use crate::tensor::{Shape, Tensor, same_dtype, storage};
use std::sync::Arc;

/// Which recurrence a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    /// Gates i, f, g, o; states (h, c).
    Lstm,
    /// Gates r, z, n.
    Gru,
    /// `h = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
}

impl CellKind {
    /// Number of gate blocks G (weights have G·H rows).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
        }
    }

    /// Number of state tensors S (2 for the LSTM's h and c).
    pub(crate) fn states(self) -> usize {
        if self == CellKind::Lstm { 2 } else { 1 }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
        }
    }
}

// ----- element math ---------------------------------------------------------------------------------

/// What the kernels need per element type: activations over slices and a fast matrix product.
/// `f64` uses the standard library (exact to an ulp, so results match other frameworks to ~1e-15)
/// and the `gemm` crate; `f32` uses the AVX2 kernels of [`rnn_simd`] when the CPU has them.
pub(crate) trait RnnFloat: Element {
    /// `s ← sigmoid(s)`.
    fn sigmoid_slice(s: &mut [Self]);
    /// `s ← tanh(s)`.
    fn tanh_slice(s: &mut [Self]);
    /// The `k × n` matrix with element `(p, j)` at `b[p·rs + j·cs]`, packed for
    /// [`packed_mul`](RnnFloat::packed_mul), when this type has a specialised product.
    fn pack(b: &[Self], strides: (usize, usize), k: usize, n: usize) -> Option<PackedB>;
    /// Runs `f` on this thread's pool of recycled buffers (see [`take`]).
    /// Wraps buffers saved by the forward pass.
    fn wrap_saved(acts: Vec<Self>, extra: Vec<Self>) -> Saved;
    /// The buffers saved by the forward pass.
    fn unwrap_saved(saved: &Saved) -> (&[Self], &[Self]);
    /// `c[m × n] (+)= a · b` for a `b` made by [`pack`](RnnFloat::pack).
    #[allow(clippy::too_many_arguments)]
    fn packed_mul(
        m: usize,
        a: &[Self],
        a_strides: (usize, usize),
        b: &PackedB,
        c: &mut [Self],
        ldc: usize,
        accumulate: bool,
        parallel_from: usize,
    );
}

#[inline]
fn sigmoid_std<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl RnnFloat for f64 {
    fn sigmoid_slice(s: &mut [f64]) {
        s.iter_mut().for_each(|v| *v = sigmoid_std(*v));
    }
    fn tanh_slice(s: &mut [f64]) {
        s.iter_mut().for_each(|v| *v = v.tanh());
    }
    fn pack(_: &[f64], _: (usize, usize), _: usize, _: usize) -> Option<PackedB> {
        None
    }
    fn wrap_saved(acts: Vec<f64>, extra: Vec<f64>) -> Saved {
        Saved::F64(acts, extra)
    }
    fn unwrap_saved(saved: &Saved) -> (&[f64], &[f64]) {
        match saved {
            Saved::F64(a, e) => (a, e),
            Saved::F32(..) => unreachable!("saved buffers of another dtype"),
        }
    }
    fn packed_mul(
        _: usize,
        _: &[f64],
        _: (usize, usize),
        _: &PackedB,
        _: &mut [f64],
        _: usize,
        _: bool,
        _: usize,
    ) {
        unreachable!("f64 operands are never packed")
    }
}

impl RnnFloat for f32 {
    fn sigmoid_slice(s: &mut [f32]) {
        if !rnn_simd::sigmoid_inplace(s) {
            s.iter_mut().for_each(|v| *v = sigmoid_std(*v));
        }
    }
    fn tanh_slice(s: &mut [f32]) {
        if !rnn_simd::tanh_inplace(s) {
            s.iter_mut().for_each(|v| *v = v.tanh());
        }
    }
    fn pack(b: &[f32], strides: (usize, usize), k: usize, n: usize) -> Option<PackedB> {
        rnn_simd::available()
            .then(|| PackedB::new_in(take::<f32>(k * (n.div_ceil(8) * 8 + 8)), b, strides, k, n))
    }
    fn wrap_saved(acts: Vec<f32>, extra: Vec<f32>) -> Saved {
        Saved::F32(acts, extra)
    }
    fn unwrap_saved(saved: &Saved) -> (&[f32], &[f32]) {
        match saved {
            Saved::F32(a, e) => (a, e),
            Saved::F64(..) => unreachable!("saved buffers of another dtype"),
        }
    }
    fn packed_mul(
        m: usize,
        a: &[f32],
        a_strides: (usize, usize),
        b: &PackedB,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
        parallel_from: usize,
    ) {
        let done = rnn_simd::sgemm_packed(m, a, a_strides, b, c, ldc, accumulate, parallel_from);
        assert!(done, "packed operands need AVX2");
    }
}

/// Products of at least this many multiply-adds are split over two threads.
const PARALLEL_FROM: usize = 1 << 21;

/// Steps with at least this many multiply-adds split their hidden units over two threads.
const SPLIT_STEPS_FROM: usize = 1 << 18;

// ----- recycled buffers -----------------------------------------------------------------------------

/// A scratch buffer of `n` elements (stale contents), from the shared buffer pool. One layer's
/// saved activations, packed weights and temporaries come to megabytes per call; reusing them
/// avoids faulting fresh pages in on every call.
fn take<T: RnnFloat>(n: usize) -> Vec<T> {
    storage::take_vec::<T>(n)
}

/// Returns a buffer to the shared pool.
fn give<T: RnnFloat>(v: Vec<T>) {
    storage::recycle::<T>(v);
}

/// The activations saved by a forward pass for the backward pass (recycled when the operation is
/// dropped).
pub(crate) enum Saved {
    F32(Vec<f32>, Vec<f32>),
    F64(Vec<f64>, Vec<f64>),
}

// ----- small dense helpers --------------------------------------------------------------------------

/// `c[m×n] (+)= a · b` with the `gemm` crate: `a` is `m×k` with strides `(a_rs, a_cs)`, `b` is
/// `k×n` row-major, `c` row-major with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
fn gemm_crate<T: Element>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    parallel_from: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "gemm: destination too short");
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|r| c[r * ldc..r * ldc + n].fill(T::zero()));
        }
        return;
    }
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "gemm: lhs too short"
    );
    assert!(k * n <= b.len(), "gemm: rhs too short");
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= parallel_from && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertions above show that every element addressed through the given sizes and
    // strides lies inside the slices; `c` is exclusively borrowed and distinct from `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            1,
            n as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// A right-hand matrix operand `k × n`, prepared once (packed for the `f32` kernel, or copied
/// row-major for the `gemm` crate) and multiplied many times.
struct Rhs<T: RnnFloat> {
    k: usize,
    n: usize,
    packed: Option<PackedB>,
    plain: Vec<T>,
}

impl<T: RnnFloat> Rhs<T> {
    /// The matrix with element `(p, j)` at `b[p·rs + j·cs]`.
    fn new(b: &[T], (rs, cs): (usize, usize), k: usize, n: usize) -> Rhs<T> {
        let packed = T::pack(b, (rs, cs), k, n);
        let mut plain = Vec::new();
        if packed.is_none() {
            plain = take(k * n);
            for p in 0..k {
                for j in 0..n {
                    plain[p * n + j] = b[p * rs + j * cs];
                }
            }
        }
        Rhs {
            k,
            n,
            packed,
            plain,
        }
    }

    /// `c[m × n] (+)= a · self`, `a` being `m × k` with strides `a_strides`.
    #[allow(clippy::too_many_arguments)]
    fn mul(
        &self,
        m: usize,
        a: &[T],
        a_strides: (usize, usize),
        c: &mut [T],
        ldc: usize,
        accumulate: bool,
        parallel_from: usize,
    ) {
        match &self.packed {
            Some(p) => T::packed_mul(m, a, a_strides, p, c, ldc, accumulate, parallel_from),
            None => gemm_crate(
                (m, self.n, self.k),
                a,
                a_strides,
                &self.plain,
                c,
                ldc,
                accumulate,
                parallel_from,
            ),
        }
    }
}

impl<T: RnnFloat> Drop for Rhs<T> {
    fn drop(&mut self) {
        if let Some(p) = self.packed.take() {
            give_f32(p.into_buffer());
        }
        give(std::mem::take(&mut self.plain));
    }
}

/// [`give`] for `f32` buffers whatever the caller's element type.
fn give_f32(v: Vec<f32>) {
    give::<f32>(v);
}

fn tensor_from<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
    Tensor::from_arc(Arc::new(storage::Buffer::from_vec(data)), shape.into())
}

// ----- parallel steps ---------------------------------------------------------------------------------

/// A buffer that the workers of one step write at disjoint positions.
struct Shared<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: `Shared` only hands out sub-slices through `get`/`get_mut`, whose callers guarantee that
// concurrently used ranges do not overlap with a mutable one.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn new(s: &mut [T]) -> Shared<T> {
        Shared {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// `start..start + len`, read-only.
    ///
    /// # Safety
    /// No mutable slice of an overlapping range may be alive (on any thread) at the same time.
    unsafe fn get(&self, start: usize, len: usize) -> &[T] {
        assert!(start + len <= self.len, "shared buffer: out of bounds");
        // SAFETY: in bounds of the buffer; aliasing is the caller's obligation.
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), len) }
    }

    /// `start..start + len`, writable.
    ///
    /// # Safety
    /// No other slice of an overlapping range may be alive (on any thread) at the same time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "shared buffer: out of bounds");
        // SAFETY: in bounds of the buffer; aliasing is the caller's obligation.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// The hidden units each worker owns in every step, as `(first, count)`: two halves when a step is
/// large enough to be worth splitting over two threads, else one range.
fn split_units(h: usize, step_macs: usize) -> Vec<(usize, usize)> {
    if h >= 32 && step_macs >= SPLIT_STEPS_FROM && rayon::current_num_threads() > 1 {
        let h0 = (h / 2).div_ceil(8) * 8;
        vec![(0, h0), (h0, h - h0)]
    } else {
        vec![(0, h)]
    }
}

/// Runs `f` for each worker state, in parallel when there are two.
fn for_workers<S: Send>(states: &mut [S], f: impl Fn(&mut S) + Sync) {
    match states {
        [a] => f(a),
        [a, b] => {
            rayon::join(|| f(a), || f(b));
        }
        _ => states.iter_mut().for_each(f),
    }
}

/// Runs `steps` steps, each made of one task per worker state, `f(step, state)`, in order: every
/// task of a step finishes before any task of the next one starts.
///
/// With two states, two threads run the steps in lockstep (one `rayon::join` for the whole loop).
/// Each task is claimed atomically by whichever thread comes first, so a thread that is late or
/// not scheduled at all never holds the other up: the other one runs both tasks. Between steps a
/// thread waits for the task the other one is running by spinning briefly (steps take
/// microseconds; yielding the core instead, as a thread-pool worker does when idle, can cost a
/// whole scheduler time slice on a busy machine), then by yielding.
fn run_steps<S: Send>(states: &mut [S], steps: usize, f: impl Fn(usize, &mut S) + Sync) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if states.len() != 2 {
        for s in 0..steps {
            states.iter_mut().for_each(|st| f(s, st));
        }
        return;
    }
    struct Slot<S>(std::cell::UnsafeCell<S>);
    // SAFETY: a slot is only accessed by the thread that claimed its task (see below).
    unsafe impl<S: Send> Sync for Slot<S> {}
    /// Marks the run as failed if a task panics, so the other thread stops waiting.
    struct Failed<'a>(&'a AtomicBool);
    impl Drop for Failed<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Release);
            }
        }
    }
    let (a, b) = states.split_at_mut(1);
    let slots = [
        Slot(std::cell::UnsafeCell::new(&mut a[0])),
        Slot(std::cell::UnsafeCell::new(&mut b[0])),
    ];
    // Per task: how many of its steps have been claimed, and how many are finished.
    let claimed = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let done = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let failed = AtomicBool::new(false);
    let driver = |first: usize| {
        let mut s = done[0]
            .load(Ordering::Acquire)
            .min(done[1].load(Ordering::Acquire));
        while s < steps {
            for w in [first, 1 - first] {
                if claimed[w]
                    .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    let _guard = Failed(&failed);
                    // SAFETY: claiming step s of task w succeeds exactly once, after both tasks
                    // of step s-1 finished (this thread waited for them below, with acquire
                    // ordering), so no other access to the slot can be running or pending.
                    let st: &mut S = unsafe { &mut **slots[w].0.get() };
                    f(s, st);
                    done[w].store(s + 1, Ordering::Release);
                }
            }
            for d in &done {
                let mut spins = 0u32;
                while d.load(Ordering::Acquire) <= s {
                    if failed.load(Ordering::Acquire) {
                        return;
                    }
                    if spins < 1 << 10 {
                        spins += 1;
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
            s += 1;
        }
    };
    rayon::join(|| driver(0), || driver(1));
}

/// Runs `f` on a rayon worker thread when `parallel` (so that the `join`s inside find the other
/// worker ready), else on the calling thread.
fn in_pool<R: Send>(parallel: bool, f: impl FnOnce() -> R + Send) -> R {
    if parallel && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

// ----- elementwise steps ------------------------------------------------------------------------------

/// Defines `$name`, which runs the `#[inline(always)]` body `$body` compiled for AVX2 + FMA when the
/// CPU has them, and for the baseline target otherwise.
macro_rules! multiversion {
    ($name:ident, $avx:ident, $body:ident, $Seg:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx<T: RnnFloat>(s: $Seg<'_, T>) {
            $body::<T>(s)
        }

        fn $name<T: RnnFloat>(s: $Seg<'_, T>) {
            #[cfg(target_arch = "x86_64")]
            if rnn_simd::available() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                return unsafe { $avx::<T>(s) };
            }
            $body::<T>(s)
        }
    };
}

/// One batch row of one worker's units in an LSTM step. Gate blocks are `[i, f, g, o]`, each of
/// the worker's `u` units.
struct LstmFwd<'a, T> {
    /// `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` for the worker's columns: 4 blocks of `u`.
    pre: &'a [T],
    bias: [&'a [T]; 4],
    /// Receive the gate activations.
    acts: [&'a mut [T]; 4],
    c_prev: &'a [T],
    c: &'a mut [T],
    tc: &'a mut [T],
    h: &'a mut [T],
}

#[inline(always)]
fn lstm_fwd_body<T: RnnFloat>(s: LstmFwd<'_, T>) {
    let u = s.c.len();
    let [ai, af, ag, ao] = s.acts;
    for (q, a) in [&mut *ai, &mut *af, &mut *ag, &mut *ao]
        .into_iter()
        .enumerate()
    {
        for ((a, &p), &b) in a.iter_mut().zip(&s.pre[q * u..(q + 1) * u]).zip(s.bias[q]) {
            *a = p + b;
        }
    }
    T::sigmoid_slice(ai);
    T::sigmoid_slice(af);
    T::tanh_slice(ag);
    T::sigmoid_slice(ao);
    for j in 0..u {
        let cv = af[j] * s.c_prev[j] + ai[j] * ag[j];
        s.c[j] = cv;
        s.tc[j] = cv;
    }
    T::tanh_slice(s.tc);
    for ((h, &o), &tc) in s.h.iter_mut().zip(&*ao).zip(&*s.tc) {
        *h = o * tc;
    }
}
multiversion!(lstm_fwd, lstm_fwd_avx2, lstm_fwd_body, LstmFwd);

/// One batch row of one worker's units in an LSTM step backwards.
struct LstmBwd<'a, T> {
    /// Cotangent of `h_t` from the output.
    gh: &'a [T],
    /// Cotangent of `h_t` from step t+1.
    dh: &'a [T],
    /// Cotangent of `c_t`; becomes that of `c_{t-1}`.
    dc: &'a mut [T],
    acts: [&'a [T]; 4],
    c_prev: &'a [T],
    tc: &'a [T],
    /// Gradients of the gate pre-activations.
    dpre: [&'a mut [T]; 4],
}

#[inline(always)]
fn lstm_bwd_body<T: RnnFloat>(s: LstmBwd<'_, T>) {
    let one = T::one();
    let [i, f, gg, o] = s.acts;
    let [di, df, dg, dpo] = s.dpre;
    for j in 0..s.dc.len() {
        let dhv = s.gh[j] + s.dh[j];
        let t = s.tc[j];
        let dcv = s.dc[j] + dhv * o[j] * (one - t * t);
        dpo[j] = dhv * t * o[j] * (one - o[j]);
        di[j] = dcv * gg[j] * i[j] * (one - i[j]);
        df[j] = dcv * s.c_prev[j] * f[j] * (one - f[j]);
        dg[j] = dcv * i[j] * (one - gg[j] * gg[j]);
        s.dc[j] = dcv * f[j];
    }
}
multiversion!(lstm_bwd, lstm_bwd_avx2, lstm_bwd_body, LstmBwd);

/// One batch row of one worker's units in a GRU step. Gate blocks are `[r, z, n]`.
struct GruFwd<'a, T> {
    /// `[x_t | h_{t-1}]` times the worker's weight columns: 4 blocks of `u`, `r` and `z` (input
    /// and hidden parts summed), then `W_in x_t` and `W_hn h_{t-1}` apart.
    pre: &'a [T],
    b_ih: [&'a [T]; 3],
    b_hh: [&'a [T]; 3],
    /// Receive the gate activations.
    acts: [&'a mut [T]; 3],
    h_prev: &'a [T],
    /// Receives `W_hn h_{t-1} + b_hn`.
    hn: &'a mut [T],
    h: &'a mut [T],
}

#[inline(always)]
fn gru_fwd_body<T: RnnFloat>(s: GruFwd<'_, T>) {
    let u = s.h.len();
    let [ar, az, an] = s.acts;
    for (q, a) in [&mut *ar, &mut *az].into_iter().enumerate() {
        let (p, bi, bh) = (&s.pre[q * u..(q + 1) * u], s.b_ih[q], s.b_hh[q]);
        for j in 0..u {
            a[j] = p[j] + bi[j] + bh[j];
        }
        T::sigmoid_slice(a);
    }
    let (px, ph) = (&s.pre[2 * u..3 * u], &s.pre[3 * u..4 * u]);
    for j in 0..u {
        let hnv = ph[j] + s.b_hh[2][j];
        s.hn[j] = hnv;
        an[j] = px[j] + s.b_ih[2][j] + ar[j] * hnv;
    }
    T::tanh_slice(an);
    for j in 0..u {
        s.h[j] = an[j] + az[j] * (s.h_prev[j] - an[j]);
    }
}
multiversion!(gru_fwd, gru_fwd_avx2, gru_fwd_body, GruFwd);

/// One batch row of one worker's units in a GRU step backwards.
struct GruBwd<'a, T> {
    gh: &'a [T],
    dh: &'a [T],
    acts: [&'a [T]; 3],
    hn: &'a [T],
    h_prev: &'a [T],
    /// Gradients of the input-side pre-activations.
    dxp: [&'a mut [T]; 3],
    /// Gradients of the hidden-side pre-activations (they differ in the n gate: `r ⊙ dn`).
    dhp: [&'a mut [T]; 3],
    /// Receives `z ⊙ dh`, the direct part of the cotangent of `h_{t-1}`.
    direct: &'a mut [T],
}

#[inline(always)]
fn gru_bwd_body<T: RnnFloat>(s: GruBwd<'_, T>) {
    let one = T::one();
    let [r, z, n] = s.acts;
    let [xr, xz, xn] = s.dxp;
    let [hr, hz, hn] = s.dhp;
    for j in 0..s.direct.len() {
        let dhv = s.gh[j] + s.dh[j];
        let dn = dhv * (one - z[j]) * (one - n[j] * n[j]);
        let dz = dhv * (s.h_prev[j] - n[j]) * z[j] * (one - z[j]);
        let dr = dn * s.hn[j] * r[j] * (one - r[j]);
        xr[j] = dr;
        xz[j] = dz;
        xn[j] = dn;
        hr[j] = dr;
        hz[j] = dz;
        hn[j] = dn * r[j];
        s.direct[j] = dhv * z[j];
    }
}
multiversion!(gru_bwd, gru_bwd_avx2, gru_bwd_body, GruBwd);

/// One batch row of one worker's units in an Elman step.
struct RnnFwd<'a, T> {
    relu: bool,
    /// `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` for the worker's units.
    pre: &'a [T],
    bias: &'a [T],
    /// The new state.
    h: &'a mut [T],
}

#[inline(always)]
fn rnn_fwd_body<T: RnnFloat>(s: RnnFwd<'_, T>) {
    for ((h, &p), &b) in s.h.iter_mut().zip(s.pre).zip(s.bias) {
        let v = p + b;
        *h = if s.relu { v.max(T::zero()) } else { v };
    }
    if !s.relu {
        T::tanh_slice(s.h);
    }
}
multiversion!(rnn_fwd, rnn_fwd_avx2, rnn_fwd_body, RnnFwd);

/// One batch row of one worker's units in an Elman step backwards, from the step's output `hv`
/// (the derivative of tanh is `1 - h²`, of relu `h > 0`).
struct RnnBwd<'a, T> {
    relu: bool,
    gh: &'a [T],
    dh: &'a [T],
    hv: &'a [T],
    dpre: &'a mut [T],
}

#[inline(always)]
fn rnn_bwd_body<T: RnnFloat>(s: RnnBwd<'_, T>) {
    for j in 0..s.dpre.len() {
        let y = s.hv[j];
        let deriv = if s.relu {
            if y > T::zero() { T::one() } else { T::zero() }
        } else {
            T::one() - y * y
        };
        s.dpre[j] = (s.gh[j] + s.dh[j]) * deriv;
    }
}
multiversion!(rnn_bwd, rnn_bwd_avx2, rnn_bwd_body, RnnBwd);

// ----- whole-sequence kernels ----------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    b: usize,
    i: usize,
    h: usize,
}

/// A worker's share of a forward pass: its units and the weights that feed them.
struct FwdWorker<T: RnnFloat> {
    r0: usize,
    u: usize,
    /// `[W_ih | W_hh]ᵀ` restricted to the worker's gate columns: `[I + H, blocks·u]`.
    w: Rhs<T>,
    /// This step's operand `[x_t | h_{t-1}]`: `[B, I + H]`.
    a: Vec<T>,
    /// Its product with `w`: `[B, blocks·u]`.
    pre: Vec<T>,
}

/// The input sequence `[T, B, I]` as a buffer with strides: element `(t, b, i)` is at
/// `data[t·ts + b·bs + i]` (so batch-first inputs are read in place).
struct XView<'a, T> {
    data: &'a [T],
    ts: usize,
    bs: usize,
}

impl<T: Copy> XView<'_, T> {
    fn row(&self, t: usize, b: usize, isz: usize) -> &[T] {
        let o = t * self.ts + b * self.bs;
        &self.data[o..o + isz]
    }
}

/// The order of the `(t, b)` rows of every per-step buffer: the output's hidden states, the saved
/// activations and the gradients of the pre-activations. Batch-major (`b·T + t`, the layout of
/// batch-first sequences) or time-major (`t·B + b`).
#[derive(Clone, Copy)]
struct Rows {
    batch_major: bool,
    t: usize,
    b: usize,
}

impl Rows {
    #[inline]
    fn at(&self, t: usize, b: usize) -> usize {
        if self.batch_major {
            b * self.t + t
        } else {
            t * self.b + b
        }
    }
}

/// Units `r0..r0 + u` of gate block `q` of a `[G·H]` vector.
#[inline]
fn seg<T>(v: &[T], q: usize, h: usize, r0: usize, u: usize) -> &[T] {
    &v[q * h + r0..q * h + r0 + u]
}

/// The forward pass: the output `[(T+S-1)·B, H]` (the hidden states in the order of `rows`, then
/// the last cell state `[B, H]` for the LSTM), the gate activations `[T·B, G·H]` (LSTM, GRU) and
/// the extra saved values (LSTM: c then tanh c, `[2, T·B, H]`; GRU: `W_hn h + b_hn`, `[T·B, H]`),
/// all in the order of `rows`.
///
/// Each step is one product `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` per worker (the input projection
/// rides along with the recurrent one, so the pre-activations are produced in the L1 cache of the
/// core that uses them), then one elementwise pass.
#[allow(clippy::too_many_arguments)]
fn forward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    rows: Rows,
    x: &XView<'_, T>,
    w_ih: &[T],
    w_hh: &[T],
    b_ih: &[T],
    b_hh: &[T],
    h0: &[T],
    c0: &[T],
) -> (Arc<storage::Buffer<T>>, Vec<T>, Vec<T>) {
    let Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    } = d;
    let gates = cell.gates();
    let g = gates * h;
    let (bh, n, k) = (bn * h, tn * bn, isz + h);
    let (gru, rnn) = (
        cell == CellKind::Gru,
        matches!(cell, CellKind::RnnTanh | CellKind::RnnRelu),
    );
    // Column blocks of the per-step product: the gates, the GRU's n gate in two parts.
    let blocks = if gru { 4 } else { gates };
    let mut out = storage::zeroed::<T>((tn + cell.states() - 1) * bh);
    // Every element of these is written below.
    let mut acts = take::<T>(if rnn { 0 } else { n * g });
    let mut extra = take::<T>(match cell {
        CellKind::Lstm => 2 * n * h,
        CellKind::Gru => n * h,
        _ => 0,
    });
    // The hidden state of the previous and of the current step, contiguous.
    let mut hbuf = take::<T>(2 * bh);
    let units = split_units(h, bn * g * k);
    {
        let o = Arc::get_mut(&mut out).expect("fresh");
        let (ab, e, hb) = (&mut acts[..], &mut extra[..], &mut hbuf[..]);
        in_pool(units.len() > 1, || {
            let bias: Vec<T> = b_ih.iter().zip(b_hh).map(|(&p, &q)| p + q).collect();
            let mut workers: Vec<FwdWorker<T>> = units
                .iter()
                .map(|&(r0, u)| {
                    // Row `c` of `w` is column `c` of the worker's product: [W_ih | W_hh] rows of
                    // its units, gate by gate (GRU: r, z, then n from x only, n from h only).
                    let mut w = take::<T>(blocks * u * k);
                    for blk in 0..blocks {
                        for j in 0..u {
                            let dst = &mut w[(blk * u + j) * k..(blk * u + j + 1) * k];
                            let q = blk.min(gates - 1);
                            let src = (q * h + r0 + j) * isz..(q * h + r0 + j + 1) * isz;
                            let srch = (q * h + r0 + j) * h..(q * h + r0 + j + 1) * h;
                            let (dx, dh) = dst.split_at_mut(isz);
                            if gru && blk == 3 {
                                dx.fill(T::zero());
                            } else {
                                dx.copy_from_slice(&w_ih[src]);
                            }
                            if gru && blk == 2 {
                                dh.fill(T::zero());
                            } else {
                                dh.copy_from_slice(&w_hh[srch]);
                            }
                        }
                    }
                    let rhs = Rhs::new(&w, (1, k), k, blocks * u);
                    give(w);
                    FwdWorker {
                        r0,
                        u,
                        w: rhs,
                        a: take(bn * k),
                        pre: take(bn * blocks * u),
                    }
                })
                .collect();
            let (os, xs, es, hs) = (
                Shared::new(o),
                Shared::new(ab),
                Shared::new(e),
                Shared::new(hb),
            );
            run_steps(&mut workers, tn, |t, wk| {
                let (r0, u, bu) = (wk.r0, wk.u, blocks * wk.u);
                // SAFETY (for every `get`/`get_mut` below): during step t the workers write
                // only their own units' columns of the rows of step t in `out`, `acts`,
                // `extra` and of the current half of `hbuf`, and read the other half of
                // `hbuf` and their own columns of step t-1 in `extra` (not written in this
                // step).
                let h_prev = if t == 0 {
                    h0
                } else {
                    unsafe { hs.get(((t - 1) % 2) * bh, bh) }
                };
                for b in 0..bn {
                    let dst = &mut wk.a[b * k..(b + 1) * k];
                    dst[..isz].copy_from_slice(x.row(t, b, isz));
                    dst[isz..].copy_from_slice(&h_prev[b * h..(b + 1) * h]);
                }
                wk.w.mul(bn, &wk.a, (k, 1), &mut wk.pre, bu, false, usize::MAX);
                for b in 0..bn {
                    let pre = &wk.pre[b * bu..(b + 1) * bu];
                    let r = rows.at(t, b);
                    let gate = |q: usize| r * g + q * h + r0;
                    let col = b * h + r0;
                    let hcur = unsafe { hs.get_mut((t % 2) * bh + col, u) };
                    match cell {
                        CellKind::Lstm => unsafe {
                            let c_prev = if t == 0 {
                                &c0[col..col + u]
                            } else {
                                es.get(rows.at(t - 1, b) * h + r0, u)
                            };
                            lstm_fwd::<T>(LstmFwd {
                                pre,
                                bias: [0, 1, 2, 3].map(|q| seg(&bias, q, h, r0, u)),
                                acts: [0, 1, 2, 3].map(|q| xs.get_mut(gate(q), u)),
                                c_prev,
                                c: es.get_mut(r * h + r0, u),
                                tc: es.get_mut((n + r) * h + r0, u),
                                h: &mut *hcur,
                            });
                        },
                        CellKind::Gru => unsafe {
                            gru_fwd::<T>(GruFwd {
                                pre,
                                b_ih: [0, 1, 2].map(|q| seg(b_ih, q, h, r0, u)),
                                b_hh: [0, 1, 2].map(|q| seg(b_hh, q, h, r0, u)),
                                acts: [0, 1, 2].map(|q| xs.get_mut(gate(q), u)),
                                h_prev: &h_prev[col..col + u],
                                hn: es.get_mut(r * h + r0, u),
                                h: &mut *hcur,
                            });
                        },
                        CellKind::RnnTanh | CellKind::RnnRelu => rnn_fwd::<T>(RnnFwd {
                            relu: cell == CellKind::RnnRelu,
                            pre,
                            bias: seg(&bias, 0, h, r0, u),
                            h: &mut *hcur,
                        }),
                    }
                    unsafe { os.get_mut(r * h + r0, u) }.copy_from_slice(hcur);
                }
            });
            for wk in workers {
                give(wk.a);
                give(wk.pre);
            }
        });
        if cell == CellKind::Lstm {
            for b in 0..bn {
                let r = rows.at(tn - 1, b);
                o[tn * bh + b * h..tn * bh + (b + 1) * h].copy_from_slice(&e[r * h..(r + 1) * h]);
            }
        }
    }
    give(hbuf);
    (out, acts, extra)
}

/// Input gradients of the fused backward pass, each `None` when not needed. `x` is in the order
/// of the kernel's rows.
struct Grads<T> {
    x: Option<Vec<T>>,
    w_ih: Option<Vec<T>>,
    w_hh: Option<Vec<T>>,
    b_ih: Option<Vec<T>>,
    b_hh: Option<Vec<T>>,
    h0: Option<Vec<T>>,
    c0: Option<Vec<T>>,
}

/// Which gradients a backward pass computes (the `needs` of the reverse rule).
#[derive(Clone, Copy)]
struct Needs {
    x: bool,
    w_ih: bool,
    w_hh: bool,
    b_ih: bool,
    b_hh: bool,
    h0: bool,
    c0: bool,
}

impl Needs {
    fn any_weight(&self) -> bool {
        self.w_ih || self.w_hh || self.b_ih || self.b_hh
    }
}

/// A worker's share of a backward pass: its units, their recurrent weights, the cotangents carried
/// between steps, and its rows of the weight and bias gradients, accumulated chunk by chunk.
struct BwdWorker<T: RnnFloat> {
    r0: usize,
    u: usize,
    /// The columns of `W_hh` of the worker's units: `[G·H, u]`.
    w: Rhs<T>,
    /// Cotangent of the worker's units of `h_t` coming from step t+1: `[B, u]`.
    dh: Vec<T>,
    /// Cotangent of `c_t` (LSTM): `[B, u]`.
    dc: Vec<T>,
    /// `z ⊙ dh` (GRU): `[B, u]`.
    direct: Vec<T>,
    /// The current chunk: the worker's columns of the input-side (`cx`) and, for the GRU,
    /// hidden-side (`ch`) pre-activation gradients, `[rows, G·u]`, and the matching rows
    /// `[x_t | h_{t-1}]`, `[rows, I + H]`.
    cx: Vec<T>,
    ch: Vec<T>,
    cb: Vec<T>,
    rows: usize,
    /// The worker's rows of `[dW_ih | dW_hh]`, `[G·u, I + H]`, and of the bias gradients.
    gw: Vec<T>,
    gb_ih: Vec<T>,
    gb_hh: Vec<T>,
}

impl<T: RnnFloat> BwdWorker<T> {
    /// `dh ← dhp_{t+1} W_hh[:, units]` (plus the direct term for the GRU).
    fn carry(&mut self, cell: CellKind, bn: usize, g: usize, dhp_next: &[T]) {
        let gru = cell == CellKind::Gru;
        if gru {
            self.dh.copy_from_slice(&self.direct);
        }
        self.w
            .mul(bn, dhp_next, (g, 1), &mut self.dh, self.u, gru, usize::MAX);
    }

    /// Adds the chunk's contribution to the weight and bias gradients and empties it:
    /// `gw += cxᵀ [X | H_prev]` (the GRU's hidden part from `ch`).
    fn flush(&mut self, gru: bool, gates: usize, isz: usize, h: usize, needs: Needs) {
        let (rows, gu, k) = (self.rows, gates * self.u, isz + h);
        if rows == 0 {
            return;
        }
        let (cx, cb) = (&self.cx[..rows * gu], &self.cb[..rows * k]);
        let chd = if gru { &self.ch[..rows * gu] } else { cx };
        if !gru && needs.w_ih && needs.w_hh {
            Rhs::new(cb, (k, 1), rows, k).mul(gu, cx, (1, gu), &mut self.gw, k, true, usize::MAX);
        } else {
            if needs.w_ih {
                Rhs::new(cb, (k, 1), rows, isz).mul(
                    gu,
                    cx,
                    (1, gu),
                    &mut self.gw,
                    k,
                    true,
                    usize::MAX,
                );
            }
            if needs.w_hh {
                Rhs::new(&cb[isz..], (k, 1), rows, h).mul(
                    gu,
                    chd,
                    (1, gu),
                    &mut self.gw[isz..],
                    k,
                    true,
                    usize::MAX,
                );
            }
        }
        let add_columns = |acc: &mut Vec<T>, m: &[T]| {
            for row in m.chunks_exact(gu) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        };
        if needs.b_ih {
            add_columns(&mut self.gb_ih, cx);
        }
        if needs.b_hh {
            add_columns(&mut self.gb_hh, chd);
        }
        self.rows = 0;
    }
}

/// Backpropagation through time given the cotangent `gout` of the output.
#[allow(clippy::too_many_arguments)]
fn backward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    rows: Rows,
    needs: &[bool],
    x: &XView<'_, T>,
    w_ih: &[T],
    w_hh: &[T],
    h0: &[T],
    c0: &[T],
    out: &[T],
    acts: &[T],
    extra: &[T],
    gout: &[T],
) -> Grads<T> {
    let Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    } = d;
    let gates = cell.gates();
    let g = gates * h;
    let (bh, bg, n, k) = (bn * h, bn * g, tn * bn, isz + h);
    let gru = cell == CellKind::Gru;
    let lstm = cell == CellKind::Lstm;
    let nd = Needs {
        x: needs[0],
        w_ih: needs[1],
        w_hh: needs[2],
        b_ih: needs[3],
        b_hh: needs[4],
        h0: needs[5],
        c0: lstm && needs.get(6).copied().unwrap_or(false),
    };
    // Steps per chunk of the weight-gradient products: about 64 rows.
    let chunk = (64 / bn).clamp(1, tn);
    let units = split_units(h, bn * g * (h + k));
    in_pool(units.len() > 1, || {
        // All the input-side gradients, for the input's gradient (only when asked for).
        let mut dxp = if nd.x { take::<T>(n * g) } else { Vec::new() };
        // The hidden-side gradients of the last two steps, contiguous: the next step's operand.
        let mut dbuf = take::<T>(2 * bg);
        let wrows = if nd.any_weight() { chunk * bn } else { 0 };
        let mut workers: Vec<BwdWorker<T>> = units
            .iter()
            .map(|&(r0, u)| BwdWorker {
                r0,
                u,
                w: Rhs::new(&w_hh[r0..], (h, 1), g, u),
                dh: vec![T::zero(); bn * u],
                dc: if lstm {
                    (0..bn)
                        .flat_map(|b| gout[tn * bh + b * h + r0..tn * bh + b * h + r0 + u].iter())
                        .copied()
                        .collect()
                } else {
                    Vec::new()
                },
                direct: if gru {
                    vec![T::zero(); bn * u]
                } else {
                    Vec::new()
                },
                cx: take(if gru { wrows.max(1) } else { wrows } * gates * u),
                ch: if gru {
                    take(wrows * gates * u)
                } else {
                    Vec::new()
                },
                cb: take(wrows * k),
                rows: 0,
                gw: if nd.w_ih || nd.w_hh {
                    vec![T::zero(); gates * u * k]
                } else {
                    Vec::new()
                },
                gb_ih: vec![T::zero(); if nd.b_ih { gates * u } else { 0 }],
                gb_hh: vec![T::zero(); if nd.b_hh { gates * u } else { 0 }],
            })
            .collect();
        {
            let (xs, ds) = (Shared::new(&mut dxp), Shared::new(&mut dbuf));
            run_steps(&mut workers, tn, |s, wk| {
                let t = tn - 1 - s;
                let (r0, u, gu) = (wk.r0, wk.u, gates * wk.u);
                // SAFETY (for every `get`/`get_mut` below): during step t the workers write
                // only their own units' columns of the rows of step t in `dxp` and of the
                // current half of `dbuf`, and read the other half of `dbuf` (complete, not
                // written in this step).
                if t + 1 < tn {
                    wk.carry(cell, bn, g, unsafe { ds.get(((t + 1) % 2) * bg, bg) });
                }
                for b in 0..bn {
                    let (r, col) = (rows.at(t, b), b * h + r0);
                    let gate = |q: usize| r * g + q * h + r0;
                    let next = |q: usize| (t % 2) * bg + b * g + q * h + r0;
                    let gh = &gout[r * h + r0..r * h + r0 + u];
                    let dh = &wk.dh[b * u..(b + 1) * u];
                    let act = |q: usize| &acts[gate(q)..gate(q) + u];
                    let h_prev = |c0: usize, len: usize| {
                        if t == 0 {
                            &h0[b * h + c0..b * h + c0 + len]
                        } else {
                            let o = rows.at(t - 1, b) * h + c0;
                            &out[o..o + len]
                        }
                    };
                    // This row of the weight-gradient chunk.
                    let cr = wk.rows + b;
                    match cell {
                        CellKind::Lstm => unsafe {
                            let c_prev = if t == 0 {
                                &c0[col..col + u]
                            } else {
                                let o = rows.at(t - 1, b) * h + r0;
                                &extra[o..o + u]
                            };
                            let tc = (n + r) * h + r0;
                            lstm_bwd::<T>(LstmBwd {
                                gh,
                                dh,
                                dc: &mut wk.dc[b * u..(b + 1) * u],
                                acts: [0, 1, 2, 3].map(act),
                                c_prev,
                                tc: &extra[tc..tc + u],
                                dpre: [0, 1, 2, 3].map(|q| ds.get_mut(next(q), u)),
                            });
                        },
                        CellKind::Gru => unsafe {
                            // The input-side gradients go straight to the chunk (row 0 as
                            // scratch when no weight gradient is needed).
                            let cr = if wrows > 0 { cr } else { 0 };
                            let (x0, rest) = wk.cx[cr * gu..(cr + 1) * gu].split_at_mut(u);
                            let (x1, x2) = rest.split_at_mut(u);
                            gru_bwd::<T>(GruBwd {
                                gh,
                                dh,
                                acts: [0, 1, 2].map(act),
                                hn: &extra[r * h + r0..r * h + r0 + u],
                                h_prev: h_prev(r0, u),
                                dxp: [x0, x1, x2],
                                dhp: [0, 1, 2].map(|q| ds.get_mut(next(q), u)),
                                direct: &mut wk.direct[b * u..(b + 1) * u],
                            });
                            if nd.x {
                                for q in 0..3 {
                                    let src = &wk.cx[cr * gu + q * u..cr * gu + (q + 1) * u];
                                    xs.get_mut(gate(q), u).copy_from_slice(src);
                                }
                            }
                        },
                        CellKind::RnnTanh | CellKind::RnnRelu => unsafe {
                            rnn_bwd::<T>(RnnBwd {
                                relu: cell == CellKind::RnnRelu,
                                gh,
                                dh,
                                hv: &out[r * h + r0..r * h + r0 + u],
                                dpre: ds.get_mut(next(0), u),
                            });
                        },
                    }
                    // SAFETY: own columns of the current half of `dbuf`.
                    let own_hidden = |q: usize| unsafe { ds.get(next(q), u) };
                    if !gru && nd.x {
                        for q in 0..gates {
                            unsafe { xs.get_mut(gate(q), u) }.copy_from_slice(own_hidden(q));
                        }
                    }
                    if wrows > 0 {
                        let dst = if gru { &mut wk.ch } else { &mut wk.cx };
                        for q in 0..gates {
                            dst[cr * gu + q * u..cr * gu + (q + 1) * u]
                                .copy_from_slice(own_hidden(q));
                        }
                        let cb = &mut wk.cb[cr * k..(cr + 1) * k];
                        cb[..isz].copy_from_slice(x.row(t, b, isz));
                        cb[isz..].copy_from_slice(h_prev(0, h));
                    }
                }
                if wrows > 0 {
                    wk.rows += bn;
                    if wk.rows == wrows || t == 0 {
                        wk.flush(gru, gates, isz, h, nd);
                    }
                }
            });
            // The cotangent of h0 (one more recurrent product).
            if nd.h0 {
                // SAFETY: no worker writes any more.
                let d0 = unsafe { ds.get(0, bg) };
                for_workers(&mut workers, |wk| wk.carry(cell, bn, g, d0));
            }
        }
        give(dbuf);
        // Gather the workers' parts.
        let gather = |part: fn(&BwdWorker<T>) -> &Vec<T>| {
            let mut full = vec![T::zero(); bh];
            for wk in &workers {
                for b in 0..bn {
                    full[b * h + wk.r0..b * h + wk.r0 + wk.u]
                        .copy_from_slice(&part(wk)[b * wk.u..(b + 1) * wk.u]);
                }
            }
            full
        };
        let h0_grad = nd.h0.then(|| gather(|w| &w.dh));
        let c0_grad = nd.c0.then(|| gather(|w| &w.dc));
        // Worker row `q·u + j` is row `q·H + r0 + j` of the weights.
        let weight_rows = |cols: std::ops::Range<usize>| {
            let width = cols.len();
            let mut full = vec![T::zero(); g * width];
            for wk in &workers {
                for q in 0..gates {
                    for j in 0..wk.u {
                        let src = &wk.gw[(q * wk.u + j) * k..(q * wk.u + j + 1) * k];
                        let dst = (q * h + wk.r0 + j) * width;
                        full[dst..dst + width].copy_from_slice(&src[cols.clone()]);
                    }
                }
            }
            full
        };
        let bias = |part: fn(&BwdWorker<T>) -> &Vec<T>| {
            let mut full = vec![T::zero(); g];
            for wk in &workers {
                for q in 0..gates {
                    full[q * h + wk.r0..q * h + wk.r0 + wk.u]
                        .copy_from_slice(&part(wk)[q * wk.u..(q + 1) * wk.u]);
                }
            }
            full
        };
        let grads = Grads {
            x: nd.x.then(|| {
                let mut gx = vec![T::zero(); n * isz];
                Rhs::new(w_ih, (isz, 1), g, isz).mul(
                    n,
                    &dxp,
                    (g, 1),
                    &mut gx,
                    isz,
                    false,
                    PARALLEL_FROM,
                );
                gx
            }),
            w_ih: nd.w_ih.then(|| weight_rows(0..isz)),
            w_hh: nd.w_hh.then(|| weight_rows(isz..k)),
            b_ih: nd.b_ih.then(|| bias(|w| &w.gb_ih)),
            b_hh: nd.b_hh.then(|| bias(|w| &w.gb_hh)),
            h0: h0_grad,
            c0: c0_grad,
        };
        for wk in workers {
            give(wk.cx);
            give(wk.ch);
            give(wk.cb);
        }
        give(dxp);
        grads
    })
}

// ----- the recorded operation -------------------------------------------------------------------

struct Recurrent {
    cell: CellKind,
    /// Whether the hidden states are stored batch-major in the output.
    batch_major: bool,
    /// The gate activations and other values saved by the forward pass (see
    /// [`forward_kernel`]): detached data, so no reference cycle.
    saved: Saved,
}

impl Drop for Recurrent {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.saved, Saved::F32(Vec::new(), Vec::new())) {
            Saved::F32(a, e) => {
                give(a);
                give(e);
            }
            Saved::F64(a, e) => {
                give(a);
                give(e);
            }
        }
    }
}

/// Whether a computation on `ts` would be recorded (reverse mode) or carry tangents (forward mode).
fn differentiated(ts: &[&Tensor]) -> bool {
    (state::grad_enabled() && ts.iter().any(|t| t.requires_grad()))
        || (state::forward_active() && ts.iter().any(|t| !t.0.tangents.is_empty()))
}

/// The input sequence `x [T, B, I]` as data and (time, batch) strides: in place when its
/// features are contiguous, else gathered.
fn x_data<T: Element>(x: &Tensor) -> (std::borrow::Cow<'_, [T]>, usize, usize) {
    let (bn, isz) = (x.dims()[1], x.dims()[2]);
    let l = x.layout();
    if isz <= 1 || l.strides[2] == 1 {
        (
            std::borrow::Cow::Borrowed(&x.buffer::<T>()[l.offset..]),
            l.strides[0],
            l.strides[1],
        )
    } else {
        (x.contiguous_data::<T>(), bn * isz, isz)
    }
}

impl Dims {
    fn rows(&self, batch_major: bool) -> Rows {
        Rows {
            batch_major,
            t: self.t,
            b: self.b,
        }
    }
}

fn dims_of(inputs: &[Tensor]) -> Dims {
    let xd = inputs[0].dims();
    Dims {
        t: xd[0],
        b: xd[1],
        i: xd[2],
        h: inputs[2].dims()[1],
    }
}

impl Recurrent {
    fn fast_vjp<T: RnnFloat>(
        &self,
        inputs: &[Tensor],
        out: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> InputGrads {
        let d = dims_of(inputs);
        let data = |k: usize| inputs[k].contiguous_data::<T>();
        let (w_ih, w_hh, h0) = (data(1), data(2), data(5));
        let (xd, ts, bs) = x_data::<T>(&inputs[0]);
        let x = XView { data: &xd, ts, bs };
        let c0 = if self.cell == CellKind::Lstm {
            data(6)
        } else {
            std::borrow::Cow::Borrowed(&[][..])
        };
        let gout = g.contiguous_data::<T>();
        let out = out.contiguous_data::<T>();
        let (acts, extra) = T::unwrap_saved(&self.saved);
        let gr = backward_kernel::<T>(
            self.cell,
            d,
            d.rows(self.batch_major),
            needs,
            &x,
            &w_ih,
            &w_hh,
            &h0,
            &c0,
            &out,
            acts,
            extra,
            &gout,
        );
        let shape = |k: usize| inputs[k].shape().clone();
        let mut res: InputGrads = smallvec::smallvec![
            gr.x.map(|v| if self.batch_major {
                tensor_from(v, [d.b, d.t, d.i]).transpose(0, 1)
            } else {
                tensor_from(v, shape(0))
            }),
            gr.w_ih.map(|v| tensor_from(v, shape(1))),
            gr.w_hh.map(|v| tensor_from(v, shape(2))),
            gr.b_ih.map(|v| tensor_from(v, shape(3))),
            gr.b_hh.map(|v| tensor_from(v, shape(4))),
            gr.h0.map(|v| tensor_from(v, shape(5))),
        ];
        if self.cell == CellKind::Lstm {
            res.push(gr.c0.map(|v| tensor_from(v, shape(6))));
        }
        res
    }
}

impl Op for Recurrent {
    fn name(&self) -> &str {
        self.cell.name()
    }

    fn vjp(&self, inputs: &[Tensor], out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let mut watched: Vec<&Tensor> = inputs.iter().collect();
        watched.push(g);
        if !differentiated(&watched) {
            return with_dtype!(g.dtype(), self.fast_vjp::<T>(inputs, out, g, needs));
        }
        // The backward pass is being differentiated: use the differentiable recurrence.
        let (cell, bm) = (self.cell, self.batch_major);
        let (_, pullback) = crate::vjp(|xs: &[Tensor]| reference(cell, bm, xs), inputs);
        pullback(g)
            .into_iter()
            .zip(needs)
            .map(|(gk, &need)| need.then_some(gk))
            .collect()
    }

    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor {
        let ts: Vec<Tensor> = tangents
            .iter()
            .zip(inputs)
            .map(|(t, x)| t.clone().unwrap_or_else(|| x.zeros_like()))
            .collect();
        let (cell, bm) = (self.cell, self.batch_major);
        crate::jvp(|xs: &[Tensor]| reference(cell, bm, xs), inputs, &ts).1
    }
}

/// The recurrence written with differentiable tensor operations: the definition the fused kernels
/// implement, and the source of higher-order derivatives. Same inputs and output as [`recurrent`].
pub(crate) fn reference(cell: CellKind, batch_major: bool, inputs: &[Tensor]) -> Tensor {
    let (x, w_ih, w_hh, b_ih, b_hh) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4]);
    let (tn, bn, isz) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let h = w_hh.dims()[1];
    let g = cell.gates() * h;
    let xp = (x.reshape([tn * bn, isz]).matmul(&w_ih.t()) + b_ih).reshape([tn, bn, g]);
    let wt = w_hh.t();
    let mut hs = inputs[5].clone();
    let mut cs = inputs.get(6).cloned();
    let mut outs = Vec::with_capacity(tn + 1);
    for t in 0..tn {
        let xt = xp.select(0, t);
        let hp = hs.matmul(&wt) + b_hh;
        hs = match cell {
            CellKind::Lstm => {
                let pre = xt + hp;
                let i = pre.narrow(1, 0, h).sigmoid();
                let f = pre.narrow(1, h, h).sigmoid();
                let gg = pre.narrow(1, 2 * h, h).tanh();
                let o = pre.narrow(1, 3 * h, h).sigmoid();
                let c = f * cs.as_ref().expect("lstm: c0") + i * gg;
                let hv = o * c.tanh();
                cs = Some(c);
                hv
            }
            CellKind::Gru => {
                let r = (xt.narrow(1, 0, h) + hp.narrow(1, 0, h)).sigmoid();
                let z = (xt.narrow(1, h, h) + hp.narrow(1, h, h)).sigmoid();
                let n = (xt.narrow(1, 2 * h, h) + r * hp.narrow(1, 2 * h, h)).tanh();
                &n + z * (&hs - &n)
            }
            CellKind::RnnTanh => (xt + hp).tanh(),
            CellKind::RnnRelu => (xt + hp).relu(),
        };
        outs.push(hs.clone());
    }
    let hseq = if batch_major {
        Tensor::stack(&outs, 1)
    } else {
        Tensor::stack(&outs, 0)
    }
    .reshape([tn * bn, h]);
    match cs {
        Some(c) if cell == CellKind::Lstm => Tensor::concat(&[hseq, c], 0),
        _ => hseq,
    }
}

/// Runs one recurrent layer over the sequence `x [T, B, I]` (any strides): see the module
/// documentation for the inputs and the output `[(T + S - 1)·B, H]`, whose hidden states are
/// stored batch-major when `batch_major`. `c0` is required for the LSTM and ignored otherwise.
///
/// # Panics
/// On inconsistent shapes or dtypes, naming the layer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recurrent(
    cell: CellKind,
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: &Tensor,
    b_hh: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
    batch_major: bool,
) -> Tensor {
    let name = cell.name();
    if x.rank() != 3 || w_ih.rank() != 2 || w_hh.rank() != 2 {
        panic!(
            "{name}: expected x [T, B, I], w_ih [G·H, I], w_hh [G·H, H]; got {}, {}, {}",
            x.shape(),
            w_ih.shape(),
            w_hh.shape()
        );
    }
    let (tn, bn, isz) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let h = w_hh.dims()[1];
    let g = cell.gates() * h;
    if tn == 0 || bn == 0 {
        panic!(
            "{name}: the input sequence {} has no time steps or an empty batch",
            x.shape()
        );
    }
    if w_ih.dims() != [g, isz] || w_hh.dims() != [g, h] {
        panic!(
            "{name}: input {} needs w_ih [{g}, {isz}] and w_hh [{g}, {h}], got {} and {}",
            x.shape(),
            w_ih.shape(),
            w_hh.shape()
        );
    }
    for (what, b) in [("b_ih", b_ih), ("b_hh", b_hh)] {
        if b.dims() != [g] {
            panic!("{name}: {what} must be [{g}], got {}", b.shape());
        }
    }
    let c0 = match (cell, c0) {
        (CellKind::Lstm, Some(c)) => Some(c),
        (CellKind::Lstm, None) => panic!("lstm: the cell state c0 is missing"),
        _ => None,
    };
    for (what, s) in std::iter::once(("h0", h0)).chain(c0.map(|c| ("c0", c))) {
        if s.dims() != [bn, h] {
            panic!("{name}: {what} must be [{bn}, {h}], got {}", s.shape());
        }
    }
    let mut inputs: Vec<&Tensor> = vec![x, w_ih, w_hh, b_ih, b_hh, h0];
    inputs.extend(c0);
    for t in &inputs[1..] {
        same_dtype(name, x, t);
    }
    let d = Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    };
    let (out, saved) = with_dtype!(x.dtype(), {
        let c0d = c0.map(|c| c.contiguous_data::<T>());
        let (xd, ts, bs) = x_data::<T>(x);
        let (o, a, e) = forward_kernel::<T>(
            cell,
            d,
            d.rows(batch_major),
            &XView { data: &xd, ts, bs },
            &w_ih.contiguous_data::<T>(),
            &w_hh.contiguous_data::<T>(),
            &b_ih.contiguous_data::<T>(),
            &b_hh.contiguous_data::<T>(),
            &h0.contiguous_data::<T>(),
            c0d.as_deref().unwrap_or(&[]),
        );
        (
            Tensor::from_arc(o, Shape::from([(tn + cell.states() - 1) * bn, h])),
            T::wrap_saved(a, e),
        )
    });
    if !differentiated(&inputs) {
        // Nothing will ask for gradients: recycle the saved activations right away.
        drop(Recurrent {
            cell,
            batch_major,
            saved,
        });
        return out;
    }
    let op = Recurrent {
        cell,
        batch_major,
        saved,
    };
    record(out, op, &inputs)
}

#[cfg(test)]
mod tests {
    use super::{CellKind, recurrent, reference};
    use crate::{DType, Tensor};
    use rand::SeedableRng;

    /// The fused kernels (forward and first-order backward) against the tensor-operation
    /// reference, at sizes whose steps are split over two workers, for both layouts; strided
    /// (batch-first) inputs are read in place.
    fn fused_matches_reference(cell: CellKind, dtype: DType, tol: f64) {
        let (t, b, i, h) = (3, 16, 8, 128);
        let g = cell.gates() * h;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cell.gates() as u64);
        let mut r = |shape: &[usize], s: f64| {
            (Tensor::randn(shape.to_vec(), DType::F64, &mut rng) * s).to_dtype(dtype)
        };
        let x_bt = r(&[b, t, i], 1.0);
        let mut inputs = vec![
            x_bt.transpose(0, 1),
            r(&[g, i], 0.3),
            r(&[g, h], 0.1),
            r(&[g], 0.3),
            r(&[g], 0.3),
            r(&[b, h], 0.5),
        ];
        if cell == CellKind::Lstm {
            inputs.push(r(&[b, h], 0.5));
        }
        let rows = (t + cell.states() - 1) * b;
        let u = r(&[rows, h], 1.0);
        for batch_major in [false, true] {
            let fused = |xs: &[Tensor]| {
                let c0 = xs.get(6);
                recurrent(
                    cell,
                    &xs[0],
                    &xs[1],
                    &xs[2],
                    &xs[3],
                    &xs[4],
                    &xs[5],
                    c0,
                    batch_major,
                )
            };
            let (y1, pull1) = crate::vjp(fused, &inputs);
            let (y2, pull2) = crate::vjp(|xs: &[Tensor]| reference(cell, batch_major, xs), &inputs);
            let close = |what: &str, a: &Tensor, b: &Tensor| {
                assert_eq!(a.shape(), b.shape(), "{cell:?} {what}");
                let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
                let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (p - q).abs() <= tol * scale,
                        "{cell:?} {what}[{k}]: {p} vs {q}"
                    );
                }
            };
            close("output", &y1, &y2);
            let want = pull2(&u);
            for (k, (a, b)) in pull1(&u).iter().zip(&want).enumerate() {
                close(&format!("gradient {k} (batch-major {batch_major})"), a, b);
            }
            // Subsets of the inputs (the reverse rule computes only what is needed).
            let subsets: &[&[usize]] = &[&[1, 2], &[2], &[1, 4], &[0, 3], &[5], &[6]];
            for subset in subsets {
                if subset.iter().any(|&k| k >= inputs.len()) {
                    continue;
                }
                let vars: Vec<Tensor> = subset.iter().map(|&k| inputs[k].clone()).collect();
                let part = |vs: &[Tensor]| {
                    let mut all = inputs.clone();
                    for (&k, v) in subset.iter().zip(vs) {
                        all[k] = v.clone();
                    }
                    fused(&all)
                };
                let (_, pull) = crate::vjp(part, &vars);
                for (&k, got) in subset.iter().zip(&pull(&u)) {
                    close(&format!("gradient {k} alone {subset:?}"), got, &want[k]);
                }
            }
        }
    }

    #[test]
    fn fused_kernels_match_reference_on_two_workers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        pool.install(|| {
            assert!(super::split_units(128, 16 * 128 * 128).len() == 2);
            for cell in [
                CellKind::Lstm,
                CellKind::Gru,
                CellKind::RnnTanh,
                CellKind::RnnRelu,
            ] {
                fused_matches_reference(cell, DType::F64, 1e-12);
                fused_matches_reference(cell, DType::F32, 2e-5);
            }
        });
    }
}
