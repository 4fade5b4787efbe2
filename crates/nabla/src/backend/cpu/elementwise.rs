//! Elementwise maps with broadcasting, strided copies and axis reductions: the generic loops, and
//! the op enums matched onto them (once per call, outside the loops). Large inputs are split across
//! rayon threads.

use super::{PAR_CHUNK, PAR_THRESHOLD};
use crate::backend::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use crate::dtype::Element;
use crate::tensor::layout::{Layout, for_each_offset, for_each_offset2, for_each_row2};
use crate::tensor::shape::{Shape, broadcast_shapes};
use crate::tensor::{Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use rayon::prelude::*;

/// `dst[i] += src[i]` (slices of the same length), split across threads when large.
pub(crate) fn add_assign<T: Element>(dst: &mut [T], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    if dst.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(PAR_CHUNK)
            .zip(src.par_chunks(PAR_CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s));
    } else {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
    }
}

/// `f` applied to every element, into a new contiguous tensor.
#[inline]
pub(crate) fn map<T: Element>(x: &Tensor, f: impl Fn(T) -> T + Sync + Send) -> Tensor {
    let n = x.numel();
    let shape = x.shape().clone();
    if let Some(src) = x.contiguous_slice::<T>() {
        if n == 1 {
            return Tensor::from_one(f(src[0]), shape);
        }
        let data = storage::build_overwrite(n, |o: &mut [T]| {
            if n >= PAR_THRESHOLD {
                o.par_chunks_mut(PAR_CHUNK)
                    .zip(src.par_chunks(PAR_CHUNK))
                    .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &s)| *o = f(s)));
            } else {
                o.iter_mut().zip(src).for_each(|(o, &s)| *o = f(s));
            }
        });
        return Tensor::from_arc(data, shape);
    }
    let buf = x.buffer::<T>();
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        let mut i = 0;
        for_each_offset(x.layout(), |off| {
            o[i] = f(buf[off]);
            i += 1;
        });
    });
    Tensor::from_arc(data, shape)
}

/// `f(a, b)` elementwise with NumPy broadcasting, into a new contiguous tensor.
#[inline]
pub(crate) fn zip<T: Element>(
    op: &str,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor {
    let (la, lb) = (a.layout(), b.layout());
    // Scalar fast path: simulators live here.
    if la.shape.rank() == 0 && lb.shape.rank() == 0 {
        let v = f(a.buffer::<T>()[la.offset], b.buffer::<T>()[lb.offset]);
        return Tensor::from_one(v, Shape::scalar());
    }
    let shape = broadcast_shapes(op, &la.shape, &lb.shape);
    let n = shape.numel();
    let (ba, bb) = (a.buffer::<T>(), b.buffer::<T>());
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        let a_full = la.shape == shape;
        let b_full = lb.shape == shape;
        match (a_full, b_full, la.contiguous_range(), lb.contiguous_range()) {
            (true, true, Some(ra), Some(rb)) => {
                let (sa, sb) = (&ba[ra], &bb[rb]);
                if n >= PAR_THRESHOLD {
                    o.par_chunks_mut(PAR_CHUNK)
                        .zip(sa.par_chunks(PAR_CHUNK).zip(sb.par_chunks(PAR_CHUNK)))
                        .for_each(|(o, (a, b))| {
                            for i in 0..o.len() {
                                o[i] = f(a[i], b[i]);
                            }
                        });
                } else {
                    for i in 0..n {
                        o[i] = f(sa[i], sb[i]);
                    }
                }
            }
            (true, false, Some(ra), _) if lb.numel() == 1 => {
                let (sa, y) = (&ba[ra], bb[lb.offset]);
                o.iter_mut().zip(sa).for_each(|(o, &x)| *o = f(x, y));
            }
            (false, true, _, Some(rb)) if la.numel() == 1 => {
                let (x, sb) = (ba[la.offset], &bb[rb]);
                o.iter_mut().zip(sb).for_each(|(o, &y)| *o = f(x, y));
            }
            _ => {
                if n == 0 {
                    return;
                }
                let (sa, sb) = (la.broadcast_strides(&shape), lb.broadcast_strides(&shape));
                let mut i = 0;
                // row by row, so that the common cases (both contiguous, one broadcast along the
                // row) run as plain slice loops
                for_each_row2(
                    &shape,
                    &sa,
                    la.offset,
                    &sb,
                    lb.offset,
                    |pa, pb, len, ia, ib| {
                        let o = &mut o[i..i + len];
                        match (ia, ib) {
                            (1, 1) => {
                                let (xa, xb) = (&ba[pa..pa + len], &bb[pb..pb + len]);
                                for k in 0..len {
                                    o[k] = f(xa[k], xb[k]);
                                }
                            }
                            (1, 0) => {
                                let (xa, y) = (&ba[pa..pa + len], bb[pb]);
                                for k in 0..len {
                                    o[k] = f(xa[k], y);
                                }
                            }
                            (0, 1) => {
                                let (x, xb) = (ba[pa], &bb[pb..pb + len]);
                                for k in 0..len {
                                    o[k] = f(x, xb[k]);
                                }
                            }
                            _ => {
                                for (k, o) in o.iter_mut().enumerate() {
                                    *o = f(ba[pa + k * ia], bb[pb + k * ib]);
                                }
                            }
                        }
                        i += len;
                    },
                );
            }
        }
    });
    Tensor::from_arc(data, shape)
}

/// Gathers the elements of `x`, viewed through `layout` (a layout over x's buffer), into a new
/// contiguous tensor.
pub(crate) fn gather_layout<T: Element>(x: &Tensor, layout: &Layout) -> Tensor {
    let buf = x.buffer::<T>();
    let n = layout.numel();
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        if let Some(r) = layout.contiguous_range() {
            o.copy_from_slice(&buf[r]);
        } else {
            let mut i = 0;
            for_each_offset(layout, |off| {
                o[i] = buf[off];
                i += 1;
            });
        }
    });
    Tensor::from_arc(data, layout.shape.clone())
}

/// Reduces the given (sorted, distinct) axes with `fold`, starting from `init`. The result keeps the
/// reduced axes as size 1 (callers squeeze them when `keepdim` is false).
pub(crate) fn reduce<T: Element>(
    x: &Tensor,
    axes: &[usize],
    init: T,
    fold: impl Fn(T, T) -> T,
) -> Tensor {
    let l = x.layout();
    let mut out_dims: Vec<usize> = l.shape.to_vec();
    for &a in axes {
        out_dims[a] = 1;
    }
    let out_shape = Shape::from(out_dims);
    let out_n = out_shape.numel();
    let buf = x.buffer::<T>();
    // Reducing everything from a contiguous buffer: a straight fold.
    if out_n == 1
        && let Some(r) = l.contiguous_range()
    {
        let v = buf[r].iter().fold(init, |acc, &v| fold(acc, v));
        return Tensor::from_one(v, out_shape);
    }
    let mut out_strides = out_shape.contiguous_strides();
    for &a in axes {
        out_strides[a] = 0;
    }
    let data = storage::build_overwrite(out_n, |o: &mut [T]| {
        o.fill(init);
        if l.shape.contains(&0) {
            return;
        }
        for_each_row2(
            &l.shape,
            &l.strides,
            l.offset,
            &out_strides,
            0,
            |px, po, len, ix, io| match (ix, io) {
                (1, 0) => {
                    let mut acc = o[po];
                    for &v in &buf[px..px + len] {
                        acc = fold(acc, v);
                    }
                    o[po] = acc;
                }
                (1, 1) => {
                    for (d, &v) in o[po..po + len].iter_mut().zip(&buf[px..px + len]) {
                        *d = fold(*d, v);
                    }
                }
                _ => {
                    for k in 0..len {
                        let d = &mut o[po + k * io];
                        *d = fold(*d, buf[px + k * ix]);
                    }
                }
            },
        );
    });
    Tensor::from_arc(data, out_shape)
}

/// `erf` for either element type (libm: correctly rounded to within an ulp or so).
#[inline]
fn erf<T: Element>(v: T) -> T {
    T::from_f64(libm::erf(v.to_f64()))
}

/// `op` on one value. With `op` a constant (each arm of [`unary`]), inlining folds the match away,
/// leaving the bare formula in the loop; with a runtime `op`, it is the one-value fast path.
#[inline(always)]
pub(crate) fn unary_value<T: Element>(op: UnaryOp, v: T) -> T {
    use crate::ops::unary::{FRAC_1_SQRT_2, GELU_TANH_A, SELU_ALPHA, SELU_SCALE, SQRT_2_OVER_PI};
    let sigmoid = |v: T| {
        if v >= T::zero() {
            T::one() / (T::one() + (-v).exp())
        } else {
            let e = v.exp();
            e / (T::one() + e)
        }
    };
    let mask = |b: bool| if b { T::one() } else { T::zero() };
    match op {
        UnaryOp::Exp => v.exp(),
        UnaryOp::Ln => v.ln(),
        UnaryOp::Log1p => v.ln_1p(),
        UnaryOp::Expm1 => v.exp_m1(),
        UnaryOp::Sqrt => v.sqrt(),
        UnaryOp::Abs => v.abs(),
        UnaryOp::Sin => v.sin(),
        UnaryOp::Cos => v.cos(),
        UnaryOp::Tan => v.tan(),
        UnaryOp::Tanh => v.tanh(),
        UnaryOp::Sigmoid => sigmoid(v),
        UnaryOp::Relu => {
            if v > T::zero() {
                v
            } else {
                T::zero()
            }
        }
        UnaryOp::Gelu => v * T::from_f64(0.5) * (T::one() + erf(v * T::from_f64(FRAC_1_SQRT_2))),
        UnaryOp::GeluTanh => {
            let u = T::from_f64(SQRT_2_OVER_PI) * (v + T::from_f64(GELU_TANH_A) * v * v * v);
            T::from_f64(0.5) * v * (T::one() + u.tanh())
        }
        UnaryOp::Erf => erf(v),
        UnaryOp::Selu => {
            if v > T::zero() {
                T::from_f64(SELU_SCALE) * v
            } else {
                T::from_f64(SELU_SCALE * SELU_ALPHA) * v.exp_m1()
            }
        }
        UnaryOp::Elu => {
            if v > T::zero() {
                v
            } else {
                v.exp_m1()
            }
        }
        UnaryOp::Softplus => v.max(T::zero()) + (-v.abs()).exp().ln_1p(),
        UnaryOp::Silu => v * sigmoid(v),
        UnaryOp::Sign => {
            if v > T::zero() {
                T::one()
            } else if v < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        }
        UnaryOp::Floor => v.floor(),
        UnaryOp::Ceil => v.ceil(),
        UnaryOp::Round => v.round(),
        UnaryOp::Affine { c, d } => v * T::from_f64(c) + T::from_f64(d),
        UnaryOp::RDiv(c) => T::from_f64(c) / v,
        UnaryOp::PowF(p) => {
            if p == 2.0 {
                v * v
            } else {
                v.powf(T::from_f64(p))
            }
        }
        UnaryOp::Clamp { min, max } => {
            let (lo, hi) = (T::from_f64(min), T::from_f64(max));
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        }
        UnaryOp::CmpScalar(cmp, c) => {
            let c = T::from_f64(c);
            mask(match cmp {
                CmpOp::Eq => v == c,
                CmpOp::Ne => v != c,
                CmpOp::Lt => v < c,
                CmpOp::Le => v <= c,
                CmpOp::Gt => v > c,
                CmpOp::Ge => v >= c,
            })
        }
    }
}

/// `op(x)` elementwise: the enum is matched here, once, and each arm runs its own monomorphised
/// [`map`] over the formula of [`unary_value`] for that (constant) op. The parametrised ops convert
/// their constants to `T` once, outside the loop.
pub(crate) fn unary<T: Element>(op: UnaryOp, x: &Tensor) -> Tensor {
    macro_rules! each {
        ($($V:ident),*) => {
            match op {
                $(UnaryOp::$V => return map(x, |v: T| unary_value::<T>(UnaryOp::$V, v)),)*
                _ => {}
            }
        };
    }
    each!(
        Exp, Ln, Log1p, Expm1, Sqrt, Abs, Sin, Cos, Tan, Tanh, Sigmoid, Relu, Gelu, GeluTanh, Erf,
        Selu, Elu, Softplus, Silu, Sign, Floor, Ceil, Round
    );
    match op {
        UnaryOp::Affine { c, d } => {
            let (c, d) = (T::from_f64(c), T::from_f64(d));
            map(x, move |v: T| v * c + d)
        }
        UnaryOp::RDiv(c) => {
            let c = T::from_f64(c);
            map(x, move |v: T| c / v)
        }
        UnaryOp::PowF(p) => {
            if p == 2.0 {
                map(x, |v: T| v * v)
            } else {
                let p = T::from_f64(p);
                map(x, move |v: T| v.powf(p))
            }
        }
        UnaryOp::Clamp { min, max } => {
            let (lo, hi) = (T::from_f64(min), T::from_f64(max));
            map(x, move |v: T| {
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            })
        }
        UnaryOp::CmpScalar(cmp, c) => {
            let c = T::from_f64(c);
            let (one, zero) = (T::one(), T::zero());
            match cmp {
                CmpOp::Eq => map(x, move |a: T| if a == c { one } else { zero }),
                CmpOp::Ne => map(x, move |a: T| if a != c { one } else { zero }),
                CmpOp::Lt => map(x, move |a: T| if a < c { one } else { zero }),
                CmpOp::Le => map(x, move |a: T| if a <= c { one } else { zero }),
                CmpOp::Gt => map(x, move |a: T| if a > c { one } else { zero }),
                CmpOp::Ge => map(x, move |a: T| if a >= c { one } else { zero }),
            }
        }
        _ => unreachable!("unary: {op:?} is handled above"),
    }
}

/// `op` on one pair of values (see [`unary_value`]).
#[inline(always)]
pub(crate) fn binary_value<T: Element>(op: BinaryOp, a: T, b: T) -> T {
    let mask = |c: bool| if c { T::one() } else { T::zero() };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => {
            if a >= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a <= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Cmp(CmpOp::Eq) => mask(a == b),
        BinaryOp::Cmp(CmpOp::Ne) => mask(a != b),
        BinaryOp::Cmp(CmpOp::Lt) => mask(a < b),
        BinaryOp::Cmp(CmpOp::Le) => mask(a <= b),
        BinaryOp::Cmp(CmpOp::Gt) => mask(a > b),
        BinaryOp::Cmp(CmpOp::Ge) => mask(a >= b),
    }
}

/// `op(a, b)` elementwise with broadcasting: one monomorphised [`zip`] per arm, over the formula
/// of [`binary_value`] for that (constant) op.
pub(crate) fn binary<T: Element>(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
    macro_rules! each {
        ($($V:ident $(($C:ident))?),*) => {
            match op {
                $(BinaryOp::$V $((CmpOp::$C))? => zip(op.name(), a, b, |x: T, y: T| {
                    binary_value::<T>(BinaryOp::$V $((CmpOp::$C))?, x, y)
                }),)*
            }
        };
    }
    each!(
        Add,
        Sub,
        Mul,
        Div,
        Pow,
        Maximum,
        Minimum,
        Cmp(Eq),
        Cmp(Ne),
        Cmp(Lt),
        Cmp(Le),
        Cmp(Gt),
        Cmp(Ge)
    )
}

/// `mask ? a : b` with broadcasting of all three.
pub(crate) fn select<T: Element>(mask: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let shape = broadcast_shapes(
        "where",
        &broadcast_shapes("where", mask.shape(), a.shape()),
        b.shape(),
    );
    let (m, va, vb) = (mask.buffer::<T>(), a.buffer::<T>(), b.buffer::<T>());
    let (lm, la, lb) = (mask.layout(), a.layout(), b.layout());
    let (sm, sa, sb) = (
        lm.broadcast_strides(&shape),
        la.broadcast_strides(&shape),
        lb.broadcast_strides(&shape),
    );
    // First pass: pick from a or b per mask; two strided walks keep the kernel simple.
    let n = shape.numel();
    let mut pick = vec![false; n];
    let mut i = 0;
    for_each_offset2(&shape, &sm, lm.offset, &sm, lm.offset, |o, _| {
        pick[i] = m[o] != T::zero();
        i += 1;
    });
    let data = storage::build(n, |out: &mut [T]| {
        let mut i = 0;
        for_each_offset2(&shape, &sa, la.offset, &sb, lb.offset, |ia, ib| {
            out[i] = if pick[i] { va[ia] } else { vb[ib] };
            i += 1;
        });
    });
    Tensor::from_arc(data, shape)
}

/// Folds `axes` of `x` with `op` (kept as size 1): one monomorphised [`reduce`] per arm.
pub(crate) fn reduce_op<T: Element>(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Tensor {
    match op {
        ReduceOp::Sum => reduce(x, axes, T::zero(), |a: T, b: T| a + b),
        ReduceOp::Prod => reduce(x, axes, T::one(), |a: T, b: T| a * b),
        ReduceOp::Max => reduce(x, axes, T::neg_infinity(), |a: T, b: T| {
            if b > a || b.is_nan() { b } else { a }
        }),
        ReduceOp::Min => reduce(x, axes, T::infinity(), |a: T, b: T| {
            if b < a || b.is_nan() { b } else { a }
        }),
    }
}

/// Sum of a contiguous slice in fixed-size blocks (accurate, and the same on any thread count).
pub(crate) fn sum_slice<T: Element>(s: &[T]) -> T {
    const BLOCK: usize = 4096;
    if s.len() >= PAR_THRESHOLD {
        let partial: Vec<T> = s
            .par_chunks(BLOCK)
            .map(|c| c.iter().copied().sum())
            .collect();
        partial.into_iter().sum()
    } else if s.len() > BLOCK {
        s.chunks(BLOCK).map(|c| c.iter().copied().sum::<T>()).sum()
    } else {
        s.iter().copied().sum()
    }
}

/// Sum of all elements of `x` as a 0-d tensor.
pub(crate) fn sum_all<T: Element>(x: &Tensor) -> Tensor {
    let v: T = match x.contiguous_slice::<T>() {
        Some(s) => sum_slice(s),
        None => sum_slice(&x.contiguous_data::<T>()),
    };
    Tensor::from_one(v, Shape::scalar())
}

/// Copies `parts` one after the other along `axis` into a new row-major tensor of `shape`.
pub(crate) fn concat<T: Element>(parts: &[Tensor], axis: usize, shape: Shape) -> Tensor {
    let dims = shape.to_vec();
    let total = dims[axis];
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let data = storage::build_overwrite(outer * total * inner, |o: &mut [T]| {
        if outer * inner == 0 {
            return;
        }
        let mut start = 0;
        for t in parts {
            let len = t.numel() / (outer * inner);
            let src = t.contiguous_data::<T>();
            let block = len * inner;
            for r in 0..outer {
                let dst = r * total * inner + start * inner;
                o[dst..dst + block].copy_from_slice(&src[r * block..(r + 1) * block]);
            }
            start += len;
        }
    });
    Tensor::from_arc(data, shape)
}

/// `x` where `mask` is zero, `value` elsewhere (the mask broadcast to `x`'s shape).
pub(crate) fn masked_fill<T: Element>(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    let v = T::from_f64(value);
    zip::<T>(
        "masked_fill",
        x,
        mask,
        move |x, m| {
            if m != T::zero() { v } else { x }
        },
    )
}

/// For each element, the product of the other elements in its reduction group.
pub(crate) fn prod_others<T: Element>(x: &Tensor, axes: &[usize]) -> Tensor {
    let r = x.rank();
    let keep: Vec<usize> = (0..r).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = keep.iter().chain(axes.iter()).copied().collect();
    let xp = x.permute(&perm).contiguous();
    let group: usize = axes.iter().map(|&a| x.dims()[a]).product();
    let src = xp.contiguous_data::<T>();
    let data = storage::build(src.len(), |o: &mut [T]| {
        for (oc, sc) in o.chunks_mut(group.max(1)).zip(src.chunks(group.max(1))) {
            let mut acc = T::one();
            for k in 0..sc.len() {
                oc[k] = acc;
                acc *= sc[k];
            }
            let mut acc = T::one();
            for k in (0..sc.len()).rev() {
                oc[k] *= acc;
                acc *= sc[k];
            }
        }
    });
    let mut inv = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Tensor::from_arc(data, xp.shape().clone())
        .permute(&inv)
        .contiguous()
}

/// `x`'s elements converted to `dtype` (round to nearest from f64 to f32), contiguous.
pub(crate) fn cast(x: &Tensor, dtype: crate::dtype::DType) -> Tensor {
    use crate::dtype::DType;
    match (x.dtype(), dtype) {
        (DType::F32, DType::F64) => {
            let v = x.contiguous_data::<f32>();
            Tensor::from_arc(
                storage::build_overwrite(v.len(), |o: &mut [f64]| {
                    o.iter_mut().zip(v.iter()).for_each(|(o, &s)| *o = s as f64)
                }),
                x.shape().clone(),
            )
        }
        (DType::F64, DType::F32) => {
            let v = x.contiguous_data::<f64>();
            Tensor::from_arc(
                storage::build_overwrite(v.len(), |o: &mut [f32]| {
                    o.iter_mut().zip(v.iter()).for_each(|(o, &s)| *o = s as f32)
                }),
                x.shape().clone(),
            )
        }
        _ => gather_layout_any(x),
    }
}

/// A contiguous copy of `x` in its own dtype.
fn gather_layout_any(x: &Tensor) -> Tensor {
    match x.dtype() {
        crate::dtype::DType::F32 => gather_layout::<f32>(x, x.layout()),
        crate::dtype::DType::F64 => gather_layout::<f64>(x, x.layout()),
    }
}
