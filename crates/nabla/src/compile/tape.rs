//! The compiled representation: a flat tape of primitive instructions over an arena of values,
//! replayed forward (values) and backward (adjoints) by a small interpreter. It is device-neutral:
//! an instruction names a primitive and arena slots, nothing about where the numbers live.

use super::chunk::Plan;
use super::num::{Dual, Num};
use crate::dtype::{DType, Element};
use crate::tensor::cpu::with_dtype;
use crate::tensor::{Shape, Tensor};
use std::any::Any;
use std::sync::Mutex;

/// An elementwise function of one value, with its derivative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum UnaryFn {
    Exp,
    Ln,
    Sin,
    Cos,
    Tanh,
    Sqrt,
    Sigmoid,
}

/// What an operation lowers to; see `Op::lower`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Prim {
    Add,
    Sub,
    Mul,
    Div,
    /// `x · c + d`
    Affine(f64, f64),
    /// `c / x`
    RDiv(f64),
    /// `x ^ p`
    PowF(f64),
    Unary(UnaryFn),
    /// The sum of all elements.
    SumAll,
    /// The same values (identity, reshape of a row-major value).
    Copy,
    /// `out[k] = a[map[k]]` with the tape's index map `#i` (views: permute, transpose,
    /// broadcast, narrow, slice, select; the expansion of a broadcast operand).
    Gather(u32),
    /// `out[map[k]] += a[k]` with index map `#i` (sums over some axes).
    ScatterAdd(u32),
    /// `[m, k] @ [k, n]`, row-major.
    MatMul(u32, u32, u32),
    /// What a linear one-input view lowers to; the builder turns it into a `Gather` whose map is
    /// the operation's forward rule applied to the input's element indices.
    Linear,
    /// What a linear reduction lowers to; the builder turns it into a `ScatterAdd` whose map is
    /// the operation's reverse rule applied to the output's element indices.
    ReduceLinear,
}

/// One instruction: `slots[out] = prim(slots[a], slots[b])` (`b` unused by unary primitives).
#[derive(Clone, Copy, Debug)]
pub(super) struct Instr {
    pub(super) prim: Prim,
    pub(super) a: u32,
    pub(super) b: u32,
    pub(super) out: u32,
}

/// Where a slot's values live in the arena.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) off: usize,
    pub(super) len: usize,
}

/// A traced program over one input signature.
pub(crate) struct Tape {
    dtype: DType,
    pub(super) slots: Vec<Slot>,
    pub(super) instrs: Vec<Instr>,
    /// The slot of each input of the function.
    pub(super) inputs: Vec<u32>,
    /// Constants (tensors captured or created without dependence on the inputs), as f64 values
    /// written into their slots before each replay.
    pub(super) consts: Vec<(u32, Vec<f64>)>,
    pub(super) output: u32,
    out_shape: Shape,
    arena_len: usize,
    /// Index maps of the `Gather` and `ScatterAdd` instructions.
    maps: Vec<Vec<u32>>,
    /// Arenas of earlier replays, kept for the next one: a batched tape's arena is hundreds of
    /// megabytes, and fresh pages (zeroed by the kernel on first touch) would cost more than the
    /// replay itself.
    pool: Mutex<Vec<Box<dyn Any + Send>>>,
    /// Whether every slot holds one element (the fast path of the interpreter).
    scalar: bool,
    /// The chunked replay of a lane-wise program (see `chunk`), when it applies.
    chunked: Option<Plan>,
}

impl Tape {
    /// A tape from the parts the trace built (see `trace::Builder::finish`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        dtype: DType,
        slots: Vec<Slot>,
        instrs: Vec<Instr>,
        inputs: Vec<u32>,
        consts: Vec<(u32, Vec<f64>)>,
        output: u32,
        out_shape: Shape,
        maps: Vec<Vec<u32>>,
    ) -> Tape {
        let arena_len = slots.last().map_or(0, |s| s.off + s.len);
        let scalar = slots.iter().all(|s| s.len == 1)
            && instrs.iter().all(|i| {
                !matches!(
                    i.prim,
                    Prim::Gather(_) | Prim::ScatterAdd(_) | Prim::MatMul(..)
                )
            });
        Tape {
            dtype,
            slots,
            instrs,
            inputs,
            consts,
            output,
            out_shape,
            arena_len,
            maps,
            pool: Mutex::new(Vec::new()),
            scalar,
            chunked: None,
        }
    }

    /// Plans the chunked replay with `lanes` lanes per chunk (0: never), where the program
    /// allows it; see `chunk`.
    pub(crate) fn with_chunks(mut self, lanes: usize) -> Tape {
        self.chunked = Plan::new(&self, lanes);
        self
    }

    /// The lanes per chunk of the chunked replay (0 when the tape replays whole).
    pub(crate) fn chunk_lanes(&self) -> usize {
        self.chunked.as_ref().map_or(0, Plan::lanes_per_chunk)
    }

    /// The output's shape.
    pub(crate) fn out_shape(&self) -> &Shape {
        &self.out_shape
    }

    /// The output's number of elements.
    pub(crate) fn out_numel(&self) -> usize {
        self.slots[self.output as usize].len
    }

    /// Number of instructions.
    pub(crate) fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Runs the program: its output, and with `grad` the gradient of the (one-element) output
    /// with respect to each input.
    pub(crate) fn run(&self, xs: &[Tensor], grad: bool) -> (Tensor, Option<Vec<Tensor>>) {
        if let Some(plan) = &self.chunked {
            return with_dtype!(self.dtype, plan.run::<T>(self, xs, grad));
        }
        with_dtype!(self.dtype, self.run_typed::<T>(xs, grad))
    }

    /// The Hessian-vector product of the (one-element) output along `vs`, one block per input,
    /// by forward over reverse mode on the tape: the same forward and backward replays, over dual
    /// numbers `(value, tangent)`; the tangents of the input adjoints are `H v`.
    pub(crate) fn hvp(&self, xs: &[Tensor], vs: &[Tensor]) -> Vec<Tensor> {
        with_dtype!(self.dtype, self.hvp_typed::<T>(xs, vs))
    }

    /// An arena of `arena_len` elements from the pool (or new); zeroed when `zero`, else with
    /// stale values (the forward replay writes every slot before reading it).
    fn take<N: Num>(&self, zero: bool) -> Vec<N> {
        let found = {
            let mut pool = self.pool.lock().expect("pool");
            let at = pool.iter().position(|b| b.is::<Vec<N>>());
            at.map(|i| pool.swap_remove(i))
        };
        match found.and_then(|b| b.downcast::<Vec<N>>().ok()) {
            Some(mut v) => {
                if zero {
                    v.fill(N::zero());
                }
                v.resize(self.arena_len, N::zero());
                *v
            }
            None => vec![N::zero(); self.arena_len],
        }
    }

    /// Returns an arena to the pool (at most two, for a value and an adjoint arena).
    fn give<N: Num>(&self, v: Vec<N>) {
        let mut pool = self.pool.lock().expect("pool");
        if pool.len() < 2 {
            pool.push(Box::new(v));
        }
    }

    /// The arena with the inputs and constants written in.
    fn arena<N: Num>(&self, input: impl Fn(usize, &mut [N])) -> Vec<N> {
        let mut v = self.take::<N>(false);
        for (i, &s) in self.inputs.iter().enumerate() {
            let s = self.slots[s as usize];
            input(i, &mut v[s.off..s.off + s.len]);
        }
        for (s, data) in &self.consts {
            let s = self.slots[*s as usize];
            for (o, &c) in v[s.off..s.off + s.len].iter_mut().zip(data) {
                *o = N::cst(c);
            }
        }
        v
    }

    fn replay<N: Num>(&self, v: &mut [N], grad: bool) -> Option<Vec<N>> {
        if self.scalar {
            forward_scalar(&self.instrs, v);
        } else {
            self.forward(v);
        }
        if !grad {
            return None;
        }
        let o = self.slots[self.output as usize];
        let mut g = self.take::<N>(true);
        g[o.off] = N::one();
        if self.scalar {
            backward_scalar(&self.instrs, v, &mut g);
        } else {
            self.backward(v, &mut g);
        }
        Some(g)
    }

    fn run_typed<T: Element + Num>(
        &self,
        xs: &[Tensor],
        grad: bool,
    ) -> (Tensor, Option<Vec<Tensor>>) {
        let mut v = self.arena::<T>(|i, dst| dst.copy_from_slice(&xs[i].contiguous_data::<T>()));
        let g = self.replay(&mut v, grad);
        let o = self.slots[self.output as usize];
        let out = Tensor::from_vec(v[o.off..o.off + o.len].to_vec(), self.out_shape.clone());
        let grads = g.map(|g| {
            let grads = xs
                .iter()
                .zip(&self.inputs)
                .map(|(x, &s)| {
                    let s = self.slots[s as usize];
                    Tensor::from_vec(g[s.off..s.off + s.len].to_vec(), x.shape().clone())
                })
                .collect();
            self.give(g);
            grads
        });
        self.give(v);
        (out, grads)
    }

    fn hvp_typed<T: Element + Num>(&self, xs: &[Tensor], vs: &[Tensor]) -> Vec<Tensor> {
        let mut v = self.arena::<Dual<T>>(|i, dst| {
            let (x, t) = (xs[i].contiguous_data::<T>(), vs[i].contiguous_data::<T>());
            for ((d, &x), &t) in dst.iter_mut().zip(x.iter()).zip(t.iter()) {
                *d = Dual { v: x, d: t };
            }
        });
        let g = self.replay(&mut v, true).expect("adjoints");
        xs.iter()
            .zip(&self.inputs)
            .map(|(x, &s)| {
                let s = self.slots[s as usize];
                let hv: Vec<T> = g[s.off..s.off + s.len].iter().map(|d| d.d).collect();
                Tensor::from_vec(hv, x.shape().clone())
            })
            .collect()
    }

    /// The forward replay: one pass per instruction over its slot (the primitive is chosen once
    /// per instruction, then a plain loop over the elements, which the compiler vectorises).
    fn forward<N: Num>(&self, v: &mut [N]) {
        for ins in &self.instrs {
            let (a, b, o) = (
                self.slots[ins.a as usize],
                self.slots[ins.b as usize],
                self.slots[ins.out as usize],
            );
            // operands live before the output in the arena (they were lowered first)
            let (lo, hi) = v.split_at_mut(o.off);
            let out = &mut hi[..o.len];
            let xa = &lo[a.off..a.off + a.len];
            let xb = &lo[b.off..b.off + b.len];
            match ins.prim {
                Prim::Add => bin(out, xa, xb, |x, y| x + y),
                Prim::Sub => bin(out, xa, xb, |x, y| x - y),
                Prim::Mul => bin(out, xa, xb, |x, y| x * y),
                Prim::Div => bin(out, xa, xb, |x, y| x / y),
                Prim::Affine(c, d) => {
                    let (c, d) = (N::cst(c), N::cst(d));
                    un(out, xa, |x| x * c + d)
                }
                Prim::RDiv(c) => {
                    let c = N::cst(c);
                    un(out, xa, |x| c / x)
                }
                Prim::PowF(p) => un(out, xa, |x| apply(Prim::PowF(p), x, x)),
                Prim::Unary(f) => match f {
                    UnaryFn::Exp => un(out, xa, N::exp),
                    UnaryFn::Ln => un(out, xa, N::ln),
                    UnaryFn::Sin => N::sin_slice(out, xa),
                    UnaryFn::Cos => N::cos_slice(out, xa),
                    UnaryFn::Tanh => un(out, xa, N::tanh),
                    UnaryFn::Sqrt => un(out, xa, N::sqrt),
                    UnaryFn::Sigmoid => un(out, xa, sigmoid),
                },
                Prim::SumAll => out[0] = xa.iter().fold(N::zero(), |s, &x| s + x),
                Prim::Copy => out.copy_from_slice(xa),
                Prim::Gather(m) => {
                    for (o, &i) in out.iter_mut().zip(&self.maps[m as usize]) {
                        *o = xa[i as usize];
                    }
                }
                Prim::ScatterAdd(m) => {
                    out.fill(N::zero());
                    for (&x, &i) in xa.iter().zip(&self.maps[m as usize]) {
                        out[i as usize] += x;
                    }
                }
                Prim::MatMul(m, k, n) => {
                    let (k, n) = (k as usize, n as usize);
                    out.fill(N::zero());
                    for i in 0..m as usize {
                        let row = &mut out[i * n..(i + 1) * n];
                        for p in 0..k {
                            let a = xa[i * k + p];
                            for (o, &bv) in row.iter_mut().zip(&xb[p * n..(p + 1) * n]) {
                                *o += a * bv;
                            }
                        }
                    }
                }
                Prim::Linear | Prim::ReduceLinear => unreachable!("lowered by the builder"),
            }
        }
    }

    /// The backward replay: adjoints accumulate into the operands' slots; the gradient of a
    /// one-element operand broadcast over the output is the sum of its contributions.
    fn backward<N: Num>(&self, v: &[N], g: &mut [N]) {
        let mut scratch = Vec::new();
        for ins in self.instrs.iter().rev() {
            let (a, b, o) = (
                self.slots[ins.a as usize],
                self.slots[ins.b as usize],
                self.slots[ins.out as usize],
            );
            let (glo, ghi) = g.split_at_mut(o.off);
            let go = &ghi[..o.len];
            let n = o.len;
            let xa = &v[a.off..a.off + a.len];
            let xb = &v[b.off..b.off + b.len];
            let z = &v[o.off..o.off + o.len];
            let ops = Operands { xa, xb, z, go };
            let (ra, rb) = (a.off..a.off + a.len, b.off..b.off + b.len);
            match ins.prim {
                Prim::Add => {
                    ops.acc(&mut glo[ra], |_, _, _, g| g);
                    ops.acc(&mut glo[rb], |_, _, _, g| g);
                }
                Prim::Sub => {
                    ops.acc(&mut glo[ra], |_, _, _, g| g);
                    ops.acc(&mut glo[rb], |_, _, _, g| -g);
                }
                Prim::Mul => {
                    ops.acc(&mut glo[ra], |_, y, _, g| g * y);
                    ops.acc(&mut glo[rb], |x, _, _, g| g * x);
                }
                Prim::Div => {
                    ops.acc(&mut glo[ra], |_, y, _, g| g / y);
                    ops.acc(&mut glo[rb], |_, y, z, g| -(g * z / y));
                }
                Prim::SumAll => {
                    let g0 = go[0];
                    glo[ra].iter_mut().for_each(|x| *x += g0);
                }
                Prim::Copy => {
                    for (x, &g) in glo[ra].iter_mut().zip(go) {
                        *x += g;
                    }
                }
                Prim::Gather(m) => {
                    let ga = &mut glo[ra];
                    for (&g, &i) in go.iter().zip(&self.maps[m as usize]) {
                        ga[i as usize] += g;
                    }
                }
                Prim::ScatterAdd(m) => {
                    for (x, &i) in glo[ra].iter_mut().zip(&self.maps[m as usize]) {
                        *x += go[i as usize];
                    }
                }
                Prim::MatMul(m, k, n) => {
                    let (m, k, n) = (m as usize, k as usize, n as usize);
                    // ga = go · bᵀ, then gb = aᵀ · go (a and b may be one slot)
                    let ga = &mut glo[ra];
                    for i in 0..m {
                        for p in 0..k {
                            let row = &xb[p * n..(p + 1) * n];
                            let mut s = N::zero();
                            for (&g, &bv) in go[i * n..(i + 1) * n].iter().zip(row) {
                                s += g * bv;
                            }
                            ga[i * k + p] += s;
                        }
                    }
                    let gb = &mut glo[rb];
                    for i in 0..m {
                        for p in 0..k {
                            let a = xa[i * k + p];
                            for (o, &g) in gb[p * n..(p + 1) * n]
                                .iter_mut()
                                .zip(&go[i * n..(i + 1) * n])
                            {
                                *o += a * g;
                            }
                        }
                    }
                }
                p => {
                    debug_assert_eq!(a.len, n);
                    let ga = &mut glo[ra];
                    match p {
                        Prim::Affine(c, _) => {
                            let c = N::cst(c);
                            un_acc(ga, xa, z, go, |_, _, g| g * c)
                        }
                        Prim::Unary(f @ (UnaryFn::Sin | UnaryFn::Cos)) => {
                            scratch.resize(n, N::zero());
                            sin_cos_acc(f, ga, xa, go, &mut scratch)
                        }
                        Prim::Unary(UnaryFn::Tanh) => {
                            un_acc(ga, xa, z, go, |_, z, g| g * (N::one() - z * z))
                        }
                        Prim::Unary(UnaryFn::Exp) => un_acc(ga, xa, z, go, |_, z, g| g * z),
                        _ => un_acc(ga, xa, z, go, |x, z, g| adjoint(p, x, x, z, g).0),
                    }
                }
            }
        }
    }
}

/// `ga += go · sin'(x)` (`f` = `Sin`) or `ga += go · cos'(x)` (`Cos`), the derivative evaluated
/// into `scratch` by the slice functions (vectorised for `f32`).
#[inline(always)]
pub(super) fn sin_cos_acc<N: Num>(f: UnaryFn, ga: &mut [N], xa: &[N], go: &[N], scratch: &mut [N]) {
    if f == UnaryFn::Sin {
        N::cos_slice(scratch, xa);
        for ((o, &d), &g) in ga.iter_mut().zip(&*scratch).zip(go) {
            *o += g * d;
        }
    } else {
        N::sin_slice(scratch, xa);
        for ((o, &s), &g) in ga.iter_mut().zip(&*scratch).zip(go) {
            *o += g * -s;
        }
    }
}

/// The operands of one instruction in the backward replay.
pub(super) struct Operands<'a, N> {
    pub(super) xa: &'a [N],
    pub(super) xb: &'a [N],
    pub(super) z: &'a [N],
    pub(super) go: &'a [N],
}

impl<N: Num> Operands<'_, N> {
    /// Adds `d(x, y, z, g)` of every element to `dst` (one element: the sum of them).
    #[inline(always)]
    pub(super) fn acc(&self, dst: &mut [N], d: impl Fn(N, N, N, N) -> N) {
        let n = self.z.len();
        match (self.xa.len() == n, self.xb.len() == n) {
            (true, true) => self.acc_with::<false, false>(dst, d),
            (false, true) => self.acc_with::<true, false>(dst, d),
            (true, false) => self.acc_with::<false, true>(dst, d),
            (false, false) => self.acc_with::<true, true>(dst, d),
        }
    }

    #[inline(always)]
    fn acc_with<const SA: bool, const SB: bool>(&self, dst: &mut [N], d: impl Fn(N, N, N, N) -> N) {
        let n = self.z.len();
        let (z, go) = (&self.z[..n], &self.go[..n]);
        let at = |k: usize| {
            let x = if SA { self.xa[0] } else { self.xa[k] };
            let y = if SB { self.xb[0] } else { self.xb[k] };
            d(x, y, z[k], go[k])
        };
        if dst.len() == n {
            for (k, o) in dst.iter_mut().enumerate() {
                *o += at(k);
            }
        } else {
            let mut s = N::zero();
            for k in 0..n {
                s += at(k);
            }
            dst[0] += s;
        }
    }
}

/// `ga += d(x, z, g)` elementwise, for a unary primitive.
#[inline(always)]
pub(super) fn un_acc<N: Num>(ga: &mut [N], xa: &[N], z: &[N], go: &[N], d: impl Fn(N, N, N) -> N) {
    for (((o, &x), &z), &g) in ga.iter_mut().zip(xa).zip(z).zip(go) {
        *o += d(x, z, g);
    }
}

/// `out = f(xa, xb)` elementwise, a one-element operand broadcast.
#[inline(always)]
pub(super) fn bin<N: Num>(out: &mut [N], xa: &[N], xb: &[N], f: impl Fn(N, N) -> N) {
    let n = out.len();
    match (xa.len() == n, xb.len() == n) {
        (true, true) => {
            for ((o, &x), &y) in out.iter_mut().zip(xa).zip(xb) {
                *o = f(x, y);
            }
        }
        (true, false) => {
            let y = xb[0];
            for (o, &x) in out.iter_mut().zip(xa) {
                *o = f(x, y);
            }
        }
        (false, true) => {
            let x = xa[0];
            for (o, &y) in out.iter_mut().zip(xb) {
                *o = f(x, y);
            }
        }
        (false, false) => out.fill(f(xa[0], xb[0])),
    }
}

/// `out = f(xa)` elementwise.
#[inline(always)]
pub(super) fn un<N: Num>(out: &mut [N], xa: &[N], f: impl Fn(N) -> N) {
    for (o, &x) in out.iter_mut().zip(xa) {
        *o = f(x);
    }
}

fn is_binary(p: Prim) -> bool {
    matches!(
        p,
        Prim::Add | Prim::Sub | Prim::Mul | Prim::Div | Prim::MatMul(..)
    )
}

/// The logistic function, as the eager kernel computes it.
#[inline(always)]
pub(super) fn sigmoid<N: Num>(x: N) -> N {
    if x.nonneg() {
        N::one() / (N::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (N::one() + e)
    }
}

/// The value of a primitive, with the same arithmetic as the eager kernels.
#[inline(always)]
pub(super) fn apply<N: Num>(p: Prim, x: N, y: N) -> N {
    match p {
        Prim::Add => x + y,
        Prim::Sub => x - y,
        Prim::Mul => x * y,
        Prim::Div => x / y,
        Prim::Affine(c, d) => x * N::cst(c) + N::cst(d),
        Prim::RDiv(c) => N::cst(c) / x,
        Prim::PowF(p) => {
            if p == 2.0 {
                x * x
            } else {
                x.powf(p)
            }
        }
        Prim::Unary(f) => match f {
            UnaryFn::Exp => x.exp(),
            UnaryFn::Ln => x.ln(),
            UnaryFn::Sin => x.sin(),
            UnaryFn::Cos => x.cos(),
            UnaryFn::Tanh => x.tanh(),
            UnaryFn::Sqrt => x.sqrt(),
            UnaryFn::Sigmoid => sigmoid(x),
        },
        Prim::SumAll | Prim::Copy => x,
        _ => unreachable!("not an elementwise primitive"),
    }
}

/// The contributions `(∂out/∂a · g, ∂out/∂b · g)` of one element, given the operands `x`, `y`
/// and the output `z`.
#[inline(always)]
pub(super) fn adjoint<N: Num>(p: Prim, x: N, y: N, z: N, g: N) -> (N, N) {
    let zero = N::zero();
    match p {
        Prim::Add => (g, g),
        Prim::Sub => (g, -g),
        Prim::Mul => (g * y, g * x),
        Prim::Div => (g / y, -(g * z / y)),
        Prim::Affine(c, _) => (g * N::cst(c), zero),
        Prim::RDiv(_) => (-(g * z / x), zero),
        Prim::PowF(p) => {
            let pm1 = p - 1.0;
            let d = if pm1 == 2.0 { x * x } else { x.powf(pm1) };
            (g * (d * N::cst(p)), zero)
        }
        Prim::Unary(f) => {
            let d = match f {
                UnaryFn::Exp => z,
                UnaryFn::Ln => N::one() / x,
                UnaryFn::Sin => x.cos(),
                UnaryFn::Cos => -x.sin(),
                UnaryFn::Tanh => N::one() - z * z,
                UnaryFn::Sqrt => N::one() / z * N::cst(0.5),
                UnaryFn::Sigmoid => z * (N::one() - z),
            };
            (g * d, zero)
        }
        Prim::SumAll | Prim::Copy => (g, zero),
        _ => unreachable!("not an elementwise primitive"),
    }
}

/// The forward pass when every slot holds one element: slot `i` is arena index `i`.
fn forward_scalar<N: Num>(instrs: &[Instr], v: &mut [N]) {
    for ins in instrs {
        v[ins.out as usize] = apply(ins.prim, v[ins.a as usize], v[ins.b as usize]);
    }
}

fn backward_scalar<N: Num>(instrs: &[Instr], v: &[N], g: &mut [N]) {
    for ins in instrs.iter().rev() {
        let (a, b, o) = (ins.a as usize, ins.b as usize, ins.out as usize);
        let (da, db) = adjoint(ins.prim, v[a], v[b], v[o], g[o]);
        g[a] += da;
        if is_binary(ins.prim) {
            g[b] += db;
        }
    }
}
