//! The kernel layer: every compute kernel of the crate behind one device-neutral interface.
//!
//! The operations in `ops/`, `nn/` and `optim/` hold the differentiation rules (forward and backward,
//! written once with tensor operations) and call the functions of this module for the numbers. A
//! kernel is named by an op enum ([`UnaryOp`], [`BinaryOp`], [`ReduceOp`], ...) rather than passed
//! as a closure, because a device that is not the host (a GPU) cannot run a Rust closure; each
//! backend matches the enum once, outside its loops, and runs a loop specialised to that op (the
//! CPU backend monomorphises one closure kernel per arm), so naming the op costs nothing per element.
//!
//! [`Backend`] lists the kernel set. A backend's storage type is the [`Storage`] variant(s) it owns;
//! its kernels take tensors (storage + layout, so any strided view) and return fresh contiguous
//! tensors on the same device, untracked: recording the operation for autodiff is the caller's job.
//! The free functions below dispatch on the tensor's [`Device`] with a `match` (one arm today):
//! static, inlined, no dynamic call per operation.
//!
//! [`Storage`]: crate::tensor::storage::Storage

pub(crate) mod cpu;
mod geom;
mod optim;

/// The activations a recurrent layer's forward kernel saves for its backward kernel (the "reserve
/// space"), recycled when dropped; host buffers on the CPU.
pub(crate) use cpu::rnn::Saved as RnnSaved;
pub(crate) use geom::{CellKind, ConvGeom, PoolGeom};
pub(crate) use optim::{AdagradRule, AdamRule, RmsRule, SgdRule, UpdateRule};

use crate::autodiff::InputGrads;
use crate::device::Device;
use crate::dtype::DType;
use crate::ops::index::Indices;
use crate::tensor::layout::Layout;
use crate::tensor::{Shape, Tensor};
use std::sync::Arc;

/// A comparison; its kernels write 1.0 where it holds and 0.0 elsewhere, in the operands' dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// An elementwise function of one tensor (with its constant parameters, as `f64`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum UnaryOp {
    Exp,
    Ln,
    Log1p,
    Expm1,
    Sqrt,
    Abs,
    Sin,
    Cos,
    Tan,
    Tanh,
    Sigmoid,
    Relu,
    Gelu,
    GeluTanh,
    Erf,
    Selu,
    Elu,
    Softplus,
    Silu,
    /// -1, 0 or 1.
    Sign,
    Floor,
    Ceil,
    /// Half away from zero.
    Round,
    /// `x * c + d`.
    Affine {
        c: f64,
        d: f64,
    },
    /// `c / x`.
    RDiv(f64),
    /// `x^p` (`p = 2` multiplies, without `powf`).
    PowF(f64),
    /// Into `[min, max]`.
    Clamp {
        min: f64,
        max: f64,
    },
    /// `x <op> c` as 1.0 or 0.0.
    CmpScalar(CmpOp, f64),
}

/// An elementwise function of two tensors, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `a` where `a >= b`, else `b`.
    Maximum,
    /// `a` where `a <= b`, else `b`.
    Minimum,
    /// 1.0 where the comparison holds, else 0.0.
    Cmp(CmpOp),
}

impl BinaryOp {
    /// The public operation's name, for panic messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Cmp(CmpOp::Eq) => "eq",
            BinaryOp::Cmp(CmpOp::Ne) => "ne",
            BinaryOp::Cmp(CmpOp::Lt) => "lt",
            BinaryOp::Cmp(CmpOp::Le) => "le",
            BinaryOp::Cmp(CmpOp::Gt) => "gt",
            BinaryOp::Cmp(CmpOp::Ge) => "ge",
        }
    }
}

/// Which bilinear map of a convolution's trilinear form `T(x, w, g)` a kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// `y = conv(x, w) [+ bias]`; operands `x`, `w`.
    Forward,
    /// `x̄ = input_grad(ḡ, w)`; operands `ḡ`, `w`.
    InputGrad,
    /// `w̄ = weight_grad(x, ḡ)`; operands `x`, `ḡ`.
    WeightGrad,
}

/// A function of each 1-d lane along one axis, into a lane of the same length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LaneOp {
    /// `exp(x - max) / Σ exp(x - max)`.
    Softmax,
    /// `x - logsumexp(x)`.
    LogSoftmax,
    /// Running sums from the start.
    Cumsum,
    /// Running sums from the end.
    CumsumReverse,
}

/// A fold over axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceOp {
    Sum,
    /// NaN-propagating maximum (of an empty group: -inf).
    Max,
    /// NaN-propagating minimum (of an empty group: +inf).
    Min,
    Prod,
}

/// The kernel set a device provides. Inputs are tensors on the backend's device (any layout: views
/// are read in place); outputs are fresh contiguous tensors on that device, not recorded for
/// autodiff. Shapes and dtypes have been checked by the calling operation.
pub(crate) trait Backend {
    // ----- elementwise, copies, reductions ----------------------------------------------------

    /// `op(x)` elementwise.
    fn unary(op: UnaryOp, x: &Tensor) -> Tensor;
    /// `op(a, b)` elementwise with broadcasting (`a`, `b` of one dtype).
    fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor;
    /// Picks `on_true` where `mask` is non-zero, else `on_false`, broadcasting all three to `shape`.
    fn select(mask: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor;
    /// The elements of `x`'s buffer seen through `layout`, into a contiguous tensor.
    fn copy_strided(x: &Tensor, layout: &Layout) -> Tensor;
    /// `x`'s elements converted to `dtype`, contiguous.
    fn cast(x: &Tensor, dtype: DType) -> Tensor;
    /// Joins `parts` (equal dims except along `axis`, where part `k` has `numel_k / (outer·inner)`
    /// rows: the parts of a `stack` are unsqueezed) one after the other into a tensor of `shape`.
    fn concat(parts: &[Tensor], axis: usize, shape: Shape) -> Tensor;
    /// Folds the given (sorted, distinct) axes; the result keeps them as size 1.
    fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Tensor;
    /// The sum of every element as a 0-d tensor, in fixed-size blocks (the same on any thread count).
    fn sum_all(x: &Tensor) -> Tensor;
    /// `op` on every lane along `axis` (output of `x`'s shape).
    fn lanes(op: LaneOp, x: &Tensor, axis: usize) -> Tensor;
    /// Whether every element of `x` is finite.
    fn all_finite(x: &Tensor) -> bool;
    /// For each element, the product of the other elements of its group over `axes` (sorted).
    fn prod_others(x: &Tensor, axes: &[usize]) -> Tensor;
    /// `x` where `mask` (broadcast to `x`'s shape) is zero, `value` elsewhere.
    fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor;

    // ----- indexing (index arrays are host memory today) ------------------------------------

    /// The slices of `x` at positions `index` along `axis`.
    fn index_select(x: &Tensor, axis: usize, index: &[usize]) -> Tensor;
    /// `x` with slice `k` of `src` added to slice `index[k]` along `axis`.
    fn index_add(x: &Tensor, axis: usize, index: &[usize], src: &Tensor) -> Tensor;
    /// `torch.gather`: values of `x` along `axis` at the positions in `index` (output of its shape).
    fn gather(x: &Tensor, axis: usize, index: &Indices) -> Tensor;
    /// `torch.scatter_add`: `x` with `src` (of `index`'s shape) added at `index` along `axis`.
    fn scatter_add(x: &Tensor, axis: usize, index: &Indices, src: &Tensor) -> Tensor;
    /// Per lane along `axis`, the position of the first maximum (`is_max`) or minimum; NaN wins.
    fn arg_extremum(x: &Tensor, axis: usize, is_max: bool) -> Vec<usize>;
    /// One-hot rows of `num_classes` (`shape` = `index`'s shape ++ `[num_classes]`).
    fn one_hot(index: &Indices, num_classes: usize, shape: Shape, dtype: DType) -> Tensor;

    // ----- products ---------------------------------------------------------------------------

    /// `a @ b` for operands of rank ≥ 2 whose batch dimensions broadcast to `batch`; `a` is
    /// `[.., m, k]`, `b` `[.., k, n]`, the result `batch ++ [m, n]`.
    fn matmul(a: &Tensor, b: &Tensor, batch: &Shape, mkn: [usize; 3]) -> Tensor;

    // ----- convolution ------------------------------------------------------------------------

    /// One map of a 2-d convolution of geometry `geom` on operands `a`, `b` (see [`ConvKind`]);
    /// `bias` only with [`ConvKind::Forward`].
    fn conv2d(
        kind: ConvKind,
        geom: &ConvGeom,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Tensor;

    // ----- pooling ----------------------------------------------------------------------------

    /// Max pooling: the values, and per output the flat position of its maximum within its input
    /// plane (the first on ties; a NaN wins), as host indices.
    fn max_pool2d(x: &Tensor, geom: &PoolGeom) -> (Tensor, Arc<[u32]>);
    /// Average pooling, or with `adjoint` its transpose; windows divide by `kH·kW` when
    /// `include_pad`, else by the input elements they cover.
    fn avg_pool2d(x: &Tensor, geom: &PoolGeom, adjoint: bool, include_pad: bool) -> Tensor;
    /// `out[p, j] = x[p, idx[p, j]]` for planes of `planes[0]` elements in and `planes[1]` out.
    fn plane_gather(x: &Tensor, idx: &[u32], planes: [usize; 2], out_shape: Shape) -> Tensor;
    /// The adjoint of `plane_gather`: `out[p, q] = Σ_{j : idx[p, j] = q} g[p, j]`.
    fn plane_scatter(g: &Tensor, idx: &[u32], planes: [usize; 2], in_shape: Shape) -> Tensor;

    // ----- recurrent layers ---------------------------------------------------------------------

    /// One recurrent layer over a whole sequence: `inputs` are `x [T, B, I]` (any layout), `w_ih`,
    /// `w_hh`, `b_ih`, `b_hh`, `h0` and, for the LSTM, `c0`. Returns the output `[(T + S - 1)·B, H]`
    /// (hidden states in `(b, t)` rows when `batch_major`, else `(t, b)`, then the LSTM's last cell
    /// state) and the activations the backward kernel reads.
    fn rnn_forward(cell: CellKind, inputs: &[&Tensor], batch_major: bool) -> (Tensor, RnnSaved);
    /// The fused first-order reverse rule of `rnn_forward`: gradients of the inputs where `needs`,
    /// given `[inputs, [out, g]]` (the output and its cotangent) and the saved activations.
    fn rnn_backward(
        cell: CellKind,
        batch_major: bool,
        tensors: [&[Tensor]; 2],
        needs: &[bool],
        saved: &RnnSaved,
    ) -> InputGrads;

    // ----- memory networks ----------------------------------------------------------------------

    /// The DNC's temporal link update on `[B, N, N]` links with `[B, N]` write weighting and
    /// precedence: `(1 - w_i - w_j) L_ij + w_i p_j`, zero diagonal.
    fn link_matrix(prev: &Tensor, write: &Tensor, prev_precedence: &Tensor) -> Tensor;

    // ----- solvers ----------------------------------------------------------------------------

    /// `y + h · Σ_j coeffs[j] · ks[j]` (every `k` of `y`'s shape and dtype): a Runge–Kutta stage.
    fn lincomb(y: &Tensor, h: f64, coeffs: &[f64], ks: &[&Tensor]) -> Tensor;
    /// The RMS over elements of `hf · Σ_i e_i k_i / (atol + rtol · max(|y0|, |y1|))`, NaN when `y1`
    /// is not finite: the error norm of an embedded Runge–Kutta pair, as a host number.
    fn error_norm(e: &[f64], ks: &[Tensor], hf: f64, y: [&Tensor; 2], tol: [f64; 2]) -> f64;

    // ----- optimisers -------------------------------------------------------------------------

    /// One optimiser update in place: `p` (a variable, rebuilt with a fresh buffer when something
    /// else still holds it) and `bufs` (made unshared first) are written, `g` is read.
    fn update(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &UpdateRule);

    // ----- accumulation -----------------------------------------------------------------------

    /// `acc += g` in place when `acc`'s buffer is unshared and contiguous and `g` is contiguous with
    /// the same shape and dtype; `false` (nothing written) otherwise.
    fn add_assign(acc: &mut Tensor, g: &Tensor) -> bool;
}

/// Runs `$body` with the type alias `B` bound to the backend of `$device`.
macro_rules! with_backend {
    ($device:expr, $body:expr) => {
        match $device {
            $crate::device::Device::Cpu => {
                #[allow(dead_code)]
                type B = $crate::backend::cpu::Cpu;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_backend;

/// The one device of the operands of `op`, or a panic naming both devices.
#[inline]
pub(crate) fn same_device(op: &str, a: &Tensor, b: &Tensor) -> Device {
    let (da, db) = (a.device(), b.device());
    if da != db {
        panic!("{op}: operands on different devices ({da} and {db})");
    }
    da
}

/// `op(x)` elementwise, on `x`'s device.
#[inline]
pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Tensor {
    with_backend!(x.device(), B::unary(op, x))
}

/// `op(a, b)` elementwise with broadcasting.
#[inline]
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
    with_backend!(same_device(op.name(), a, b), B::binary(op, a, b))
}

/// `mask ? on_true : on_false` elementwise with broadcasting.
#[inline]
pub(crate) fn select(mask: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
    same_device("where", mask, on_true);
    with_backend!(
        same_device("where", on_true, on_false),
        B::select(mask, on_true, on_false)
    )
}

/// `x`'s buffer seen through `layout`, as a contiguous tensor.
#[inline]
pub(crate) fn copy_strided(x: &Tensor, layout: &Layout) -> Tensor {
    with_backend!(x.device(), B::copy_strided(x, layout))
}

/// Joins `parts` along `axis` into a tensor of `shape` (see [`Backend::concat`]).
pub(crate) fn concat(parts: &[Tensor], axis: usize, shape: Shape) -> Tensor {
    let device = parts[0].device();
    for p in &parts[1..] {
        same_device("concat", &parts[0], p);
    }
    with_backend!(device, B::concat(parts, axis, shape))
}

/// Folds the given axes (kept as size 1).
#[inline]
pub(crate) fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Tensor {
    with_backend!(x.device(), B::reduce(op, x, axes))
}

/// The sum of all elements, as a 0-d tensor.
#[inline]
pub(crate) fn sum_all(x: &Tensor) -> Tensor {
    with_backend!(x.device(), B::sum_all(x))
}

/// `acc += g` in place where possible (see [`Backend::add_assign`]).
#[inline]
pub(crate) fn add_assign(acc: &mut Tensor, g: &Tensor) -> bool {
    acc.device() == g.device() && with_backend!(acc.device(), B::add_assign(acc, g))
}

/// `x` where `mask` is zero, `value` elsewhere.
#[inline]
pub(crate) fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    with_backend!(
        same_device("masked_fill", x, mask),
        B::masked_fill(x, mask, value)
    )
}

/// One map of a 2-d convolution (see [`Backend::conv2d`]).
pub(crate) fn conv2d(
    kind: ConvKind,
    geom: &ConvGeom,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
) -> Tensor {
    let device = same_device("conv2d", a, b);
    if let Some(bias) = bias {
        same_device("conv2d", a, bias);
    }
    with_backend!(device, B::conv2d(kind, geom, a, b, bias))
}

/// Max pooling values and argmax positions (see [`Backend::max_pool2d`]).
pub(crate) fn max_pool2d(x: &Tensor, geom: &PoolGeom) -> (Tensor, Arc<[u32]>) {
    with_backend!(x.device(), B::max_pool2d(x, geom))
}

/// Average pooling or its adjoint (see [`Backend::avg_pool2d`]).
pub(crate) fn avg_pool2d(x: &Tensor, geom: &PoolGeom, adjoint: bool, include_pad: bool) -> Tensor {
    with_backend!(x.device(), B::avg_pool2d(x, geom, adjoint, include_pad))
}

/// A gather by per-plane positions (see [`Backend::plane_gather`]).
pub(crate) fn plane_gather(
    x: &Tensor,
    idx: &[u32],
    planes: [usize; 2],
    out_shape: Shape,
) -> Tensor {
    with_backend!(x.device(), B::plane_gather(x, idx, planes, out_shape))
}

/// The adjoint of [`plane_gather`].
pub(crate) fn plane_scatter(
    g: &Tensor,
    idx: &[u32],
    planes: [usize; 2],
    in_shape: Shape,
) -> Tensor {
    with_backend!(g.device(), B::plane_scatter(g, idx, planes, in_shape))
}

/// Batched, broadcasting `a @ b` (see [`Backend::matmul`]).
pub(crate) fn matmul(a: &Tensor, b: &Tensor, batch: &Shape, mkn: [usize; 3]) -> Tensor {
    with_backend!(same_device("matmul", a, b), B::matmul(a, b, batch, mkn))
}

/// The slices of `x` at `index` along `axis`.
pub(crate) fn index_select(x: &Tensor, axis: usize, index: &[usize]) -> Tensor {
    with_backend!(x.device(), B::index_select(x, axis, index))
}

/// `x` with the slices of `src` added at `index` along `axis`.
pub(crate) fn index_add(x: &Tensor, axis: usize, index: &[usize], src: &Tensor) -> Tensor {
    with_backend!(
        same_device("index_add", x, src),
        B::index_add(x, axis, index, src)
    )
}

/// `torch.gather` along `axis`.
pub(crate) fn gather(x: &Tensor, axis: usize, index: &Indices) -> Tensor {
    with_backend!(x.device(), B::gather(x, axis, index))
}

/// `torch.scatter_add` along `axis`.
pub(crate) fn scatter_add(x: &Tensor, axis: usize, index: &Indices, src: &Tensor) -> Tensor {
    with_backend!(
        same_device("scatter_add", x, src),
        B::scatter_add(x, axis, index, src)
    )
}

/// Positions of the extrema along `axis`.
pub(crate) fn arg_extremum(x: &Tensor, axis: usize, is_max: bool) -> Vec<usize> {
    with_backend!(x.device(), B::arg_extremum(x, axis, is_max))
}

/// One-hot encoding, on the default device.
pub(crate) fn one_hot(index: &Indices, num_classes: usize, shape: Shape, dtype: DType) -> Tensor {
    with_backend!(
        Device::default(),
        B::one_hot(index, num_classes, shape, dtype)
    )
}

/// `op` on every lane along `axis`.
pub(crate) fn lanes(op: LaneOp, x: &Tensor, axis: usize) -> Tensor {
    with_backend!(x.device(), B::lanes(op, x, axis))
}

/// One optimiser update in place (see [`Backend::update`]).
pub(crate) fn update(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &UpdateRule) {
    let device = same_device("optimiser update", p, g);
    for b in bufs.iter() {
        same_device("optimiser update", p, b);
    }
    with_backend!(device, B::update(p, g, bufs, rule))
}

/// A Runge–Kutta linear combination (see [`Backend::lincomb`]).
pub(crate) fn lincomb(y: &Tensor, h: f64, coeffs: &[f64], ks: &[&Tensor]) -> Tensor {
    for k in ks {
        same_device("ode lincomb", y, k);
    }
    with_backend!(y.device(), B::lincomb(y, h, coeffs, ks))
}

/// The error norm of an embedded pair (see [`Backend::error_norm`]).
pub(crate) fn error_norm(e: &[f64], ks: &[Tensor], hf: f64, y: [&Tensor; 2], tol: [f64; 2]) -> f64 {
    with_backend!(
        same_device("ode error norm", y[0], y[1]),
        B::error_norm(e, ks, hf, y, tol)
    )
}

/// Whether every element of `x` is finite.
pub(crate) fn all_finite(x: &Tensor) -> bool {
    with_backend!(x.device(), B::all_finite(x))
}

/// Products of the other elements of each group (see [`Backend::prod_others`]).
pub(crate) fn prod_others(x: &Tensor, axes: &[usize]) -> Tensor {
    with_backend!(x.device(), B::prod_others(x, axes))
}

/// The DNC link matrix update (see [`Backend::link_matrix`]).
pub(crate) fn link_matrix(prev: &Tensor, write: &Tensor, prev_precedence: &Tensor) -> Tensor {
    same_device("link_matrix", prev, write);
    with_backend!(
        same_device("link_matrix", prev, prev_precedence),
        B::link_matrix(prev, write, prev_precedence)
    )
}

/// One recurrent layer forward (see [`Backend::rnn_forward`]).
pub(crate) fn rnn_forward(
    cell: CellKind,
    inputs: &[&Tensor],
    batch_major: bool,
) -> (Tensor, RnnSaved) {
    for t in &inputs[1..] {
        same_device(cell.name(), inputs[0], t);
    }
    with_backend!(
        inputs[0].device(),
        B::rnn_forward(cell, inputs, batch_major)
    )
}

/// The fused reverse rule of a recurrent layer (see [`Backend::rnn_backward`]).
pub(crate) fn rnn_backward(
    cell: CellKind,
    batch_major: bool,
    tensors: [&[Tensor]; 2],
    needs: &[bool],
    saved: &RnnSaved,
) -> InputGrads {
    with_backend!(
        same_device(cell.name(), &tensors[0][0], &tensors[1][1]),
        B::rnn_backward(cell, batch_major, tensors, needs, saved)
    )
}

/// `x` converted to `dtype`.
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Tensor {
    with_backend!(x.device(), B::cast(x, dtype))
}
