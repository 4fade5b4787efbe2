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

pub(crate) use geom::ConvGeom;

use crate::device::Device;
use crate::tensor::layout::Layout;
use crate::tensor::{Shape, Tensor};

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
    /// Joins `parts` (equal dims except along `axis`, where part `k` has `numel_k / (outer·inner)`
    /// rows: the parts of a `stack` are unsqueezed) one after the other into a tensor of `shape`.
    fn concat(parts: &[Tensor], axis: usize, shape: Shape) -> Tensor;
    /// Folds the given (sorted, distinct) axes; the result keeps them as size 1.
    fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Tensor;
    /// The sum of every element as a 0-d tensor, in fixed-size blocks (the same on any thread count).
    fn sum_all(x: &Tensor) -> Tensor;
    /// `x` where `mask` (broadcast to `x`'s shape) is zero, `value` elsewhere.
    fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor;

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
