//! The compiled representation: a flat tape of primitive instructions over an arena of values,
//! replayed forward (values) and backward (adjoints) by a small interpreter. It is device-neutral:
//! an instruction names a primitive and arena slots, nothing about where the numbers live.

use crate::autodiff::Node;
use crate::dtype::{DType, Element};
use crate::tensor::cpu::with_dtype;
use crate::tensor::{Shape, Tensor};
use std::collections::{HashMap, HashSet};

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
}

/// One instruction: `slots[out] = prim(slots[a], slots[b])` (`b` unused by unary primitives).
#[derive(Clone, Copy, Debug)]
struct Instr {
    prim: Prim,
    a: u32,
    b: u32,
    out: u32,
}

/// Where a slot's values live in the arena.
#[derive(Clone, Copy, Debug)]
struct Slot {
    off: usize,
    len: usize,
}

/// A traced program over one input signature.
pub(crate) struct Tape {
    dtype: DType,
    slots: Vec<Slot>,
    instrs: Vec<Instr>,
    /// The slot of each input of the function.
    inputs: Vec<u32>,
    /// Constants (tensors captured or created without dependence on the inputs), as f64 values
    /// written into their slots before each replay.
    consts: Vec<(u32, Vec<f64>)>,
    output: u32,
    out_shape: Shape,
    arena_len: usize,
    /// Whether every slot holds one element (the fast path of the interpreter).
    scalar: bool,
}

/// Why a traced graph could not be lowered.
pub(crate) type LowerError = String;

impl Tape {
    /// Lowers the graph that computed `out` from the variables `inputs` (ids of their nodes, in
    /// order; every node with an id of at least `start` was recorded during the trace).
    pub(crate) fn build(
        out: &Tensor,
        input_ids: &[u64],
        inputs: &[Tensor],
        start: u64,
    ) -> Result<Tape, LowerError> {
        let dtype = out.dtype();
        let mut b = Builder {
            slots: Vec::new(),
            by_node: HashMap::new(),
            consts: Vec::new(),
            instrs: Vec::new(),
            arena_len: 0,
        };
        let mut input_slots = Vec::new();
        for (x, &id) in inputs.iter().zip(input_ids) {
            if x.dtype() != dtype {
                return Err(format!(
                    "mixed dtypes ({} input, {} output)",
                    x.dtype(),
                    dtype
                ));
            }
            let s = b.slot(x.numel());
            b.by_node.insert(id, s);
            input_slots.push(s);
        }
        // Collect the recorded nodes reachable from the output, then lower them in id order (a
        // node's inputs have smaller ids: a topological order).
        let mut nodes: Vec<&Tensor> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut stack: Vec<&Tensor> = vec![out];
        while let Some(t) = stack.pop() {
            let Some(node) = t.0.node.as_ref() else {
                continue;
            };
            if b.by_node.contains_key(&node.id) || !seen.insert(node.id) {
                continue;
            }
            if node.id < start {
                return Err("the function captures a tensor that requires grad".into());
            }
            nodes.push(t);
            stack.extend(node.inputs.iter());
        }
        nodes.sort_by_key(|t| t.0.node.as_ref().map(|n| n.id));
        for t in nodes {
            let node = t.0.node.as_ref().expect("node");
            b.lower(t, node, dtype)?;
        }
        let output = b.operand(out, dtype)?;
        let scalar = b.slots.iter().all(|s| s.len == 1);
        Ok(Tape {
            dtype,
            slots: b.slots,
            instrs: b.instrs,
            inputs: input_slots,
            consts: b.consts,
            output,
            out_shape: out.shape().clone(),
            arena_len: b.arena_len,
            scalar,
        })
    }

    /// Number of instructions.
    pub(crate) fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Runs the program: its output, and with `grad` the gradient of the (one-element) output
    /// with respect to each input.
    pub(crate) fn run(&self, xs: &[Tensor], grad: bool) -> (Tensor, Option<Vec<Tensor>>) {
        with_dtype!(self.dtype, self.run_typed::<T>(xs, grad))
    }

    fn run_typed<T: Element>(&self, xs: &[Tensor], grad: bool) -> (Tensor, Option<Vec<Tensor>>) {
        let mut v = vec![T::zero(); self.arena_len];
        for (x, &s) in xs.iter().zip(&self.inputs) {
            let s = self.slots[s as usize];
            v[s.off..s.off + s.len].copy_from_slice(&x.contiguous_data::<T>());
        }
        for (s, data) in &self.consts {
            let s = self.slots[*s as usize];
            for (o, &c) in v[s.off..s.off + s.len].iter_mut().zip(data) {
                *o = T::from_f64(c);
            }
        }
        if self.scalar {
            forward_scalar(&self.instrs, &mut v);
        } else {
            self.forward(&mut v);
        }
        let o = self.slots[self.output as usize];
        let out = Tensor::from_vec(v[o.off..o.off + o.len].to_vec(), self.out_shape.clone());
        if !grad {
            return (out, None);
        }
        let mut g = vec![T::zero(); self.arena_len];
        g[o.off] = T::one();
        if self.scalar {
            backward_scalar(&self.instrs, &v, &mut g);
        } else {
            self.backward(&v, &mut g);
        }
        let grads = xs
            .iter()
            .zip(&self.inputs)
            .map(|(x, &s)| {
                let s = self.slots[s as usize];
                Tensor::from_vec(g[s.off..s.off + s.len].to_vec(), x.shape().clone())
            })
            .collect();
        (out, Some(grads))
    }

    fn forward<T: Element>(&self, v: &mut [T]) {
        for ins in &self.instrs {
            let (a, b, o) = (
                self.slots[ins.a as usize],
                self.slots[ins.b as usize],
                self.slots[ins.out as usize],
            );
            for k in 0..o.len {
                let x = v[a.off + if a.len == 1 { 0 } else { k }];
                let y = v[b.off + if b.len == 1 { 0 } else { k }];
                v[o.off + k] = if ins.prim == Prim::SumAll {
                    (0..a.len).map(|i| v[a.off + i]).sum()
                } else {
                    apply(ins.prim, x, y)
                };
            }
        }
    }

    fn backward<T: Element>(&self, v: &[T], g: &mut [T]) {
        for ins in self.instrs.iter().rev() {
            let (a, b, o) = (
                self.slots[ins.a as usize],
                self.slots[ins.b as usize],
                self.slots[ins.out as usize],
            );
            if ins.prim == Prim::SumAll {
                let go = g[o.off];
                g[a.off..a.off + a.len].iter_mut().for_each(|x| *x += go);
                continue;
            }
            for k in 0..o.len {
                let ia = a.off + if a.len == 1 { 0 } else { k };
                let ib = b.off + if b.len == 1 { 0 } else { k };
                let (da, db) = adjoint(ins.prim, v[ia], v[ib], v[o.off + k], g[o.off + k]);
                g[ia] += da;
                if is_binary(ins.prim) {
                    g[ib] += db;
                }
            }
        }
    }
}

fn is_binary(p: Prim) -> bool {
    matches!(p, Prim::Add | Prim::Sub | Prim::Mul | Prim::Div)
}

/// The value of a primitive, with the same arithmetic as the eager kernels.
#[inline(always)]
fn apply<T: Element>(p: Prim, x: T, y: T) -> T {
    match p {
        Prim::Add => x + y,
        Prim::Sub => x - y,
        Prim::Mul => x * y,
        Prim::Div => x / y,
        Prim::Affine(c, d) => x * T::from_f64(c) + T::from_f64(d),
        Prim::RDiv(c) => T::from_f64(c) / x,
        Prim::PowF(p) => {
            if p == 2.0 {
                x * x
            } else {
                x.powf(T::from_f64(p))
            }
        }
        Prim::Unary(f) => match f {
            UnaryFn::Exp => x.exp(),
            UnaryFn::Ln => x.ln(),
            UnaryFn::Sin => x.sin(),
            UnaryFn::Cos => x.cos(),
            UnaryFn::Tanh => x.tanh(),
            UnaryFn::Sqrt => x.sqrt(),
            UnaryFn::Sigmoid => {
                if x >= T::zero() {
                    T::one() / (T::one() + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (T::one() + e)
                }
            }
        },
        Prim::SumAll | Prim::Copy => x,
    }
}

/// The contributions `(∂out/∂a · g, ∂out/∂b · g)` of one element, given the operands `x`, `y`
/// and the output `z`.
#[inline(always)]
fn adjoint<T: Element>(p: Prim, x: T, y: T, z: T, g: T) -> (T, T) {
    let zero = T::zero();
    match p {
        Prim::Add => (g, g),
        Prim::Sub => (g, -g),
        Prim::Mul => (g * y, g * x),
        Prim::Div => (g / y, -(g * z / y)),
        Prim::Affine(c, _) => (g * T::from_f64(c), zero),
        Prim::RDiv(_) => (-(g * z / x), zero),
        Prim::PowF(p) => {
            let pm1 = p - 1.0;
            let d = if pm1 == 2.0 {
                x * x
            } else {
                x.powf(T::from_f64(pm1))
            };
            (g * (d * T::from_f64(p)), zero)
        }
        Prim::Unary(f) => {
            let d = match f {
                UnaryFn::Exp => z,
                UnaryFn::Ln => T::one() / x,
                UnaryFn::Sin => x.cos(),
                UnaryFn::Cos => -x.sin(),
                UnaryFn::Tanh => T::one() - z * z,
                UnaryFn::Sqrt => T::one() / z * T::from_f64(0.5),
                UnaryFn::Sigmoid => z * (T::one() - z),
            };
            (g * d, zero)
        }
        Prim::SumAll | Prim::Copy => (g, zero),
    }
}

/// The forward pass when every slot holds one element: slot `i` is arena index `i`.
fn forward_scalar<T: Element>(instrs: &[Instr], v: &mut [T]) {
    for ins in instrs {
        v[ins.out as usize] = apply(ins.prim, v[ins.a as usize], v[ins.b as usize]);
    }
}

fn backward_scalar<T: Element>(instrs: &[Instr], v: &[T], g: &mut [T]) {
    for ins in instrs.iter().rev() {
        let (a, b, o) = (ins.a as usize, ins.b as usize, ins.out as usize);
        let (da, db) = adjoint(ins.prim, v[a], v[b], v[o], g[o]);
        g[a] += da;
        if is_binary(ins.prim) {
            g[b] += db;
        }
    }
}

struct Builder {
    slots: Vec<Slot>,
    by_node: HashMap<u64, u32>,
    consts: Vec<(u32, Vec<f64>)>,
    instrs: Vec<Instr>,
    arena_len: usize,
}

impl Builder {
    fn slot(&mut self, len: usize) -> u32 {
        self.slots.push(Slot {
            off: self.arena_len,
            len,
        });
        self.arena_len += len;
        (self.slots.len() - 1) as u32
    }

    /// The slot holding `t`: the result of a lowered node, or a new constant.
    fn operand(&mut self, t: &Tensor, dtype: DType) -> Result<u32, LowerError> {
        if t.dtype() != dtype {
            return Err(format!("mixed dtypes ({} and {})", t.dtype(), dtype));
        }
        if let Some(node) = t.0.node.as_ref() {
            return self
                .by_node
                .get(&node.id)
                .copied()
                .ok_or_else(|| "internal: operand lowered out of order".to_string());
        }
        let data: Vec<f64> = t.values_as();
        let s = self.slot(data.len());
        self.consts.push((s, data));
        Ok(s)
    }

    fn lower(&mut self, t: &Tensor, node: &Node, dtype: DType) -> Result<(), LowerError> {
        let name = node.op.name().to_string();
        let prim = node
            .op
            .lower()
            .ok_or_else(|| format!("operation `{name}` has no compiled form"))?;
        let n = t.numel();
        let ins = &node.inputs;
        let a = self.operand(&ins[0], dtype)?;
        let b = if ins.len() > 1 {
            self.operand(&ins[1], dtype)?
        } else {
            a
        };
        let fits = |x: &Tensor| x.numel() == 1 || x.shape() == t.shape();
        let ok = match prim {
            Prim::SumAll => n == 1,
            Prim::Copy => ins[0].numel() == n,
            _ => ins.iter().all(fits),
        };
        if !ok {
            let shapes: Vec<String> = ins.iter().map(|x| x.shape().to_string()).collect();
            return Err(format!(
                "`{name}` on shapes {} (only same-shape or one-element operands are compiled)",
                shapes.join(", ")
            ));
        }
        let out = self.slot(n);
        self.by_node.insert(node.id, out);
        self.instrs.push(Instr { prim, a, b, out });
        Ok(())
    }
}
