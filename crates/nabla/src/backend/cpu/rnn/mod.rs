//! CPU kernels of the recurrent layers (`nn/recurrent.rs` holds the operation): one call runs one
//! layer over a whole sequence.
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
//!   rows of the weight gradients. Products use the AVX2 kernel of [`simd`] for `f32` and the
//!   `gemm` crate otherwise. Scratch and saved buffers are recycled per thread (see [`take`]).
//! - Higher-order derivatives do not use these kernels: the operation differentiates its
//!   reference recurrence written with tensor operations instead.

mod backward;
mod cells;
mod forward;
pub(crate) mod simd;

use super::gemm::Mat;
use crate::autodiff::InputGrads;
use crate::backend::CellKind;
use crate::dtype::Element;
use crate::tensor::{Shape, Tensor, storage};
use backward::backward_kernel;
use forward::forward_kernel;
use simd::PackedB;
use std::sync::Arc;

// ----- element math ---------------------------------------------------------------------------------

/// What the kernels need per element type: activations over slices and a fast matrix product.
/// `f64` uses the standard library (exact to an ulp, so results match other frameworks to ~1e-15)
/// and the `gemm` crate; `f32` uses the AVX2 kernels of [`simd`] when the CPU has them.
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
        if !simd::sigmoid_inplace(s) {
            s.iter_mut().for_each(|v| *v = sigmoid_std(*v));
        }
    }
    fn tanh_slice(s: &mut [f32]) {
        if !simd::tanh_inplace(s) {
            s.iter_mut().for_each(|v| *v = v.tanh());
        }
    }
    fn pack(b: &[f32], strides: (usize, usize), k: usize, n: usize) -> Option<PackedB> {
        simd::available()
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
        let done = simd::sgemm_packed(m, a, a_strides, b, c, ldc, accumulate, parallel_from);
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
            None => {
                let (n, k) = (self.n, self.k);
                super::gemm::gemm(
                    m,
                    n,
                    k,
                    c,
                    ldc,
                    accumulate,
                    Mat::new(a, 0, a_strides),
                    Mat::new(&self.plain, 0, (n, 1)),
                    m * n * k >= parallel_from,
                )
            }
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
pub(crate) fn split_units(h: usize, step_macs: usize) -> Vec<(usize, usize)> {
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

impl Drop for Saved {
    /// Gives the buffers back to the pool.
    fn drop(&mut self) {
        match self {
            Saved::F32(a, e) => {
                give(std::mem::take(a));
                give(std::mem::take(e));
            }
            Saved::F64(a, e) => {
                give(std::mem::take(a));
                give(std::mem::take(e));
            }
        }
    }
}

// ----- shapes and views --------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    b: usize,
    i: usize,
    h: usize,
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

// ----- entry points ------------------------------------------------------------------------------

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

/// Runs one layer over the sequence: `inputs` are `x, w_ih, w_hh, b_ih, b_hh, h0` and, for the
/// LSTM, `c0` (checked by the caller). Returns the output `[(T + S - 1)·B, H]` and the activations
/// the backward kernel needs.
pub(crate) fn forward<T: RnnFloat>(
    cell: CellKind,
    inputs: &[&Tensor],
    batch_major: bool,
) -> (Tensor, Saved) {
    let (x, w_ih, w_hh, b_ih, b_hh, h0) = (
        inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
    );
    let c0 = inputs.get(6).copied();
    let (tn, bn, isz) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let h = w_hh.dims()[1];
    let d = Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    };
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
}

/// The fused first-order reverse rule: the gradients of the inputs (as [`forward`] takes them)
/// given the cotangent `g` of the output `out`, from the activations `saved` by the forward pass.
pub(crate) fn backward<T: RnnFloat>(
    cell: CellKind,
    batch_major: bool,
    [inputs, og]: [&[Tensor]; 2],
    needs: &[bool],
    saved: &Saved,
) -> InputGrads {
    let (out, g) = (&og[0], &og[1]);
    let d = dims_of(inputs);
    let data = |k: usize| inputs[k].contiguous_data::<T>();
    let (w_ih, w_hh, h0) = (data(1), data(2), data(5));
    let (xd, ts, bs) = x_data::<T>(&inputs[0]);
    let x = XView { data: &xd, ts, bs };
    let c0 = if cell == CellKind::Lstm {
        data(6)
    } else {
        std::borrow::Cow::Borrowed(&[][..])
    };
    let gout = g.contiguous_data::<T>();
    let out = out.contiguous_data::<T>();
    let (acts, extra) = T::unwrap_saved(saved);
    let gr = backward_kernel::<T>(
        cell,
        d,
        d.rows(batch_major),
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
        gr.x.map(|v| if batch_major {
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
    if cell == CellKind::Lstm {
        res.push(gr.c0.map(|v| tensor_from(v, shape(6))));
    }
    res
}
