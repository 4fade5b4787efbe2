//! Chunked replay of lane-wise programs: a program over a batch (`[n]` tensors, every operation
//! elementwise, the batch summed at the end) computes each of its `n` lanes independently, so the
//! tape can be replayed forward *and* backward over a few lanes at a time. A chunk's values then
//! stay in cache instead of streaming the whole tape's values (`n` times larger) through memory.
//!
//! At plan time (once per trace) the slots are given places in two small arenas by liveness, like
//! registers:
//! - values: a value read by the backward pass keeps its place to the end of the chunk; any other
//!   value's place is reused once its last reader ran;
//! - adjoints: an adjoint is live from its first contribution (in reverse order) to the
//!   instruction that defined its slot, which reads it, propagates it, and zeroes it for the next
//!   owner of the place. Slots that do not depend on an input get no adjoint.
//!
//! Which values the backward pass reads follows each primitive's adjoint (`x·y` reads both
//! operands, `sin x` its operand, `exp x` its output, `x + y` nothing).
//!
//! A program applies when every slot holds `n` elements (a lane slot) or one (a uniform slot, the
//! same for every lane: a 0-d parameter, a constant); every instruction but the last ones is an
//! elementwise primitive (no gather, scatter, matrix product or sum: nothing mixes lanes), and
//! the output is either a lane slot (no gradient) or the sum of a lane slot, optionally followed
//! by affine maps (`mean`, scaling). The sum's adjoint does not depend on values, so each chunk
//! seeds it and runs its backward pass right after its forward pass; the chunks' values of the
//! summed slot are kept and summed in lane order at the end, as the whole-tape replay does.
//!
//! Exactness: every lane runs the same operations in the same order as in the whole-tape replay,
//! so values and the gradients of lane inputs are bit-identical. The gradient of a uniform slot
//! (a 0-d input broadcast over the lanes) is summed chunk by chunk, so it may differ in rounding.

use super::num::Num;
use super::tape::{
    Instr, Operands, Prim, Tape, UnaryFn, adjoint, apply, bin, sigmoid, sin_cos_acc, un, un_acc,
};
use crate::dtype::Element;
use crate::tensor::Tensor;
use std::any::Any;
use std::sync::Mutex;

/// A slot without a place.
const NONE: u32 = u32::MAX;

/// The chunked replay of one tape.
pub(crate) struct Plan {
    /// Elements of a lane slot (the batch).
    lanes: usize,
    /// Lanes per chunk.
    chunk: usize,
    /// The elementwise instructions, in tape order (slot numbers as in the tape).
    body: Vec<Instr>,
    /// Per slot: whether it is a lane slot (else uniform).
    lane: Vec<bool>,
    /// Per slot: its place in a chunk's value arena (`NONE`: not used).
    val: Vec<u32>,
    /// Per slot: its place in a chunk's adjoint arena (`NONE`: no gradient reaches it).
    adj: Vec<u32>,
    val_len: usize,
    adj_len: usize,
    /// Without a tail, the output is the lane slot `tape.output`.
    tail: Option<Tail>,
    /// Arenas of earlier replays (a value and an adjoint arena per number type).
    pool: Mutex<Vec<Box<dyn Any + Send>>>,
}

/// The end of a program whose output is `affine(sum(x))`.
struct Tail {
    /// The summed lane slot.
    sum_in: u32,
    /// The affine maps `y = y·c + d` applied to the sum, in order.
    affine: Vec<(f64, f64)>,
}

/// Places of one size class handed out and taken back, like registers.
struct Places {
    size: usize,
    next: usize,
    free: Vec<u32>,
}

impl Places {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            ((self.next - 1) * self.size) as u32
        })
    }
    fn give(&mut self, p: u32) {
        self.free.push(p);
    }
}

/// Lane places are `chunk`-element blocks from 0; uniform places are single elements after them,
/// marked by this bit until the lane region's size is known.
const UNIFORM: u32 = 1 << 31;

/// Assigns places to `n_slots` slots of two size classes, with the uniform region after the lane
/// region.
struct Alloc {
    lane: Places,
    uni: Places,
}

impl Alloc {
    fn new(chunk: usize) -> Alloc {
        let p = |size| Places {
            size,
            next: 0,
            free: Vec::new(),
        };
        Alloc {
            lane: p(chunk),
            uni: p(1),
        }
    }
    fn take(&mut self, lane: bool) -> u32 {
        if lane {
            self.lane.take()
        } else {
            self.uni.take() | UNIFORM
        }
    }
    fn give(&mut self, p: u32) {
        if p & UNIFORM != 0 {
            self.uni.give(p & !UNIFORM);
        } else {
            self.lane.give(p);
        }
    }
    /// Resolves the uniform places; the arena's length.
    fn finish(&self, places: &mut [u32]) -> usize {
        let lane_len = self.lane.next * self.lane.size;
        for p in places
            .iter_mut()
            .filter(|p| **p != NONE && **p & UNIFORM != 0)
        {
            *p = (*p & !UNIFORM) + lane_len as u32;
        }
        lane_len + self.uni.next
    }
}

fn is_elementwise(p: Prim) -> bool {
    matches!(
        p,
        Prim::Add
            | Prim::Sub
            | Prim::Mul
            | Prim::Div
            | Prim::Affine(..)
            | Prim::RDiv(_)
            | Prim::PowF(_)
            | Prim::Unary(_)
            | Prim::Copy
    )
}

fn is_binary(p: Prim) -> bool {
    matches!(p, Prim::Add | Prim::Sub | Prim::Mul | Prim::Div)
}

/// The operands of an instruction (one for a unary primitive, or when both are one slot).
fn operands(ins: &Instr) -> impl Iterator<Item = (usize, u32)> {
    let two = is_binary(ins.prim) && ins.b != ins.a;
    [(0, ins.a), (1, ins.b)]
        .into_iter()
        .take(if two { 2 } else { 1 })
}

/// Which of `(x, y, z)` (operand a, operand b, output) the adjoint of `p` reads, given which
/// operands need a gradient.
fn reads(p: Prim, ga: bool, gb: bool) -> [bool; 3] {
    match p {
        Prim::Mul => [gb, ga, false],
        Prim::Div => [false, ga || gb, gb],
        Prim::RDiv(_) => [true, false, true],
        Prim::PowF(_) => [true, false, false],
        Prim::Unary(f) => match f {
            UnaryFn::Ln | UnaryFn::Sin | UnaryFn::Cos => [true, false, false],
            UnaryFn::Exp | UnaryFn::Tanh | UnaryFn::Sqrt | UnaryFn::Sigmoid => [false, false, true],
        },
        _ => [false; 3],
    }
}

impl Plan {
    /// The plan for `tape` with `chunk` lanes per chunk, or `None` when the program is not
    /// lane-wise (or too small for chunks to pay).
    pub(super) fn new(tape: &Tape, chunk: usize) -> Option<Plan> {
        let slots = &tape.slots;
        let instrs = &tape.instrs;
        let n = slots.iter().map(|s| s.len).max()?;
        if chunk == 0 || n < 2 || slots.iter().any(|s| s.len != 1 && s.len != n) {
            return None;
        }
        let chunk = chunk.min(n);
        let lane: Vec<bool> = slots.iter().map(|s| s.len == n).collect();
        // the tail: output = affine(...(sum(x)))
        let mut k = instrs.len();
        let mut cur = tape.output;
        let mut affine = Vec::new();
        let mut tail = None;
        while k > 0 && instrs[k - 1].out == cur {
            let ins = instrs[k - 1];
            match ins.prim {
                Prim::Affine(c, d) if !lane[ins.a as usize] => {
                    affine.push((c, d));
                    cur = ins.a;
                }
                Prim::SumAll if lane[ins.a as usize] => {
                    affine.reverse();
                    tail = Some(Tail {
                        sum_in: ins.a,
                        affine: std::mem::take(&mut affine),
                    });
                    k -= 1;
                    break;
                }
                _ => break,
            }
            k -= 1;
        }
        if tail.is_none() {
            k = instrs.len();
            if !lane[tape.output as usize] {
                return None;
            }
        }
        let body = instrs[..k].to_vec();
        if body.is_empty() {
            return None;
        }
        for ins in &body {
            if !is_elementwise(ins.prim)
                || (!lane[ins.out as usize] && operands(ins).any(|(_, s)| lane[s as usize]))
            {
                return None;
            }
        }
        let keep = tail.as_ref().map_or(tape.output, |t| t.sum_in) as usize;
        let ns = slots.len();
        // which slots depend on an input
        let mut needs = vec![false; ns];
        for &s in &tape.inputs {
            needs[s as usize] = true;
        }
        for ins in &body {
            needs[ins.out as usize] = operands(ins).any(|(_, s)| needs[s as usize]);
        }
        // adjoint places, in reverse order
        let mut adj = vec![NONE; ns];
        let mut alloc = Alloc::new(chunk);
        if tail.is_some() && needs[keep] {
            adj[keep] = alloc.take(true);
        }
        // the inputs' places are theirs for the whole replay (a 0-d input's adjoint sums over
        // every chunk)
        for &s in &tape.inputs {
            if adj[s as usize] == NONE {
                adj[s as usize] = alloc.take(lane[s as usize]);
            }
        }
        for ins in body.iter().rev() {
            let o = ins.out as usize;
            if adj[o] == NONE {
                continue;
            }
            for (_, s) in operands(ins) {
                let s = s as usize;
                if needs[s] && adj[s] == NONE {
                    adj[s] = alloc.take(lane[s]);
                }
            }
            alloc.give(adj[o]);
        }
        let adj_len = alloc.finish(&mut adj);
        // values the backward pass reads
        let mut saved = vec![false; ns];
        saved[keep] = true;
        for ins in &body {
            if adj[ins.out as usize] == NONE {
                continue;
            }
            let (ga, gb) = (adj[ins.a as usize] != NONE, adj[ins.b as usize] != NONE);
            let r = reads(ins.prim, ga, gb);
            for (s, r) in [ins.a, ins.b, ins.out].into_iter().zip(r) {
                saved[s as usize] |= r;
            }
        }
        // value places, in order; inputs and constants are written before the first instruction
        let mut last = vec![NONE; ns];
        for (i, ins) in body.iter().enumerate() {
            for (_, s) in operands(ins) {
                last[s as usize] = i as u32;
            }
        }
        let mut val = vec![NONE; ns];
        let mut alloc = Alloc::new(chunk);
        let written = tape
            .inputs
            .iter()
            .copied()
            .chain(tape.consts.iter().map(|c| c.0));
        for s in written {
            let s = s as usize;
            if last[s] != NONE || s == keep {
                val[s] = alloc.take(lane[s]);
            }
        }
        for (i, ins) in body.iter().enumerate() {
            let o = ins.out as usize;
            if val[o] != NONE {
                return None; // a slot written twice: not a tape this plan understands
            }
            val[o] = alloc.take(lane[o]);
            for (_, s) in operands(ins) {
                let s = s as usize;
                if last[s] == i as u32 && !saved[s] && s != keep {
                    alloc.give(val[s]);
                }
            }
            if last[o] == NONE && !saved[o] && o != keep {
                alloc.give(val[o]);
            }
        }
        if val[keep] == NONE {
            return None;
        }
        let val_len = alloc.finish(&mut val);
        let plan = Plan {
            lanes: n,
            chunk,
            body,
            lane,
            val,
            adj,
            val_len,
            adj_len,
            tail,
            pool: Mutex::new(Vec::new()),
        };
        plan.disjoint().then_some(plan)
    }

    /// Lanes per chunk.
    pub(super) fn lanes_per_chunk(&self) -> usize {
        self.chunk
    }

    /// Whether every instruction's output place is apart from its operands' (values and
    /// adjoints): the replay relies on it.
    fn disjoint(&self) -> bool {
        let len = |s: u32| if self.lane[s as usize] { self.chunk } else { 1 };
        let apart = |places: &[u32], x: u32, y: u32| {
            let (px, py) = (places[x as usize] as usize, places[y as usize] as usize);
            px + len(x) <= py || py + len(y) <= px
        };
        self.body.iter().all(|ins| {
            operands(ins).all(|(_, s)| {
                apart(&self.val, ins.out, s)
                    && (self.adj[ins.out as usize] == NONE
                        || self.adj[s as usize] == NONE
                        || apart(&self.adj, ins.out, s))
            })
        })
    }

    /// Runs the program chunk by chunk: its output, and with `grad` the gradient of the
    /// (one-element) output with respect to each input.
    pub(super) fn run<T: Element + Num>(
        &self,
        tape: &Tape,
        xs: &[Tensor],
        grad: bool,
    ) -> (Tensor, Option<Vec<Tensor>>) {
        let data: Vec<_> = xs.iter().map(|x| x.contiguous_data::<T>()).collect();
        let inputs: Vec<&[T]> = data.iter().map(|d| &d[..]).collect();
        let consts: Vec<(u32, Vec<T>)> = tape
            .consts
            .iter()
            .map(|(s, d)| (*s, d.iter().map(|&c| T::cst(c)).collect()))
            .collect();
        let (mut v, mut g) = self.take::<T>();
        let mut kept = vec![<T as Num>::zero(); self.lanes];
        let mut grads: Vec<Vec<T>> = tape
            .inputs
            .iter()
            .map(|&s| vec![<T as Num>::zero(); tape.slots[s as usize].len])
            .collect();
        let mut job = Job {
            plan: self,
            tape,
            inputs: &inputs,
            consts: &consts,
            v: &mut v,
            g: &mut g,
            kept: &mut kept,
            grads: if grad { Some(&mut grads) } else { None },
        };
        job.run_all();
        self.give(v, g);
        let out = match &self.tail {
            Some(tail) => {
                let mut y = kept.iter().fold(<T as Num>::zero(), |s, &x| s + x);
                for &(c, d) in &tail.affine {
                    y = y * T::cst(c) + T::cst(d);
                }
                vec![y]
            }
            None => kept,
        };
        let out = Tensor::from_vec(out, tape.out_shape().clone());
        let grads = grad.then(|| {
            grads
                .into_iter()
                .zip(xs)
                .map(|(g, x)| Tensor::from_vec(g, x.shape().clone()))
                .collect()
        });
        (out, grads)
    }

    /// A value arena (stale values: the forward pass writes every place before reading it) and
    /// a zeroed adjoint arena, from the pool or new.
    fn take<N: Num>(&self) -> (Vec<N>, Vec<N>) {
        let found = {
            let mut pool = self.pool.lock().expect("pool");
            let at = pool.iter().position(|b| b.is::<(Vec<N>, Vec<N>)>());
            at.map(|i| pool.swap_remove(i))
        };
        match found.and_then(|b| b.downcast::<(Vec<N>, Vec<N>)>().ok()) {
            Some(b) => *b,
            None => (vec![N::zero(); self.val_len], vec![N::zero(); self.adj_len]),
        }
    }

    /// Returns arenas to the pool; the adjoint arena is all zeros again (every place is zeroed
    /// by its owner's defining instruction, and the inputs' by the replay).
    fn give<N: Num>(&self, v: Vec<N>, g: Vec<N>) {
        let mut pool = self.pool.lock().expect("pool");
        if pool.len() < 2 {
            pool.push(Box::new((v, g)));
        }
    }
}

/// One replay of a plan.
struct Job<'a, N> {
    plan: &'a Plan,
    tape: &'a Tape,
    inputs: &'a [&'a [N]],
    consts: &'a [(u32, Vec<N>)],
    v: &'a mut [N],
    g: &'a mut [N],
    /// The values of the summed slot (or the output), all lanes.
    kept: &'a mut [N],
    /// The input gradients, when the replay computes them.
    grads: Option<&'a mut Vec<Vec<N>>>,
}

impl<N: Num> Job<'_, N> {
    fn run_all(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { self.run_avx2() };
            return;
        }
        self.run_chunks();
    }

    /// The same code compiled for AVX2 (8 `f32` lanes a vector; no fused multiply-add is formed
    /// implicitly, so the results are those of the portable build).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&mut self) {
        self.run_chunks();
    }

    #[inline(always)]
    fn run_chunks(&mut self) {
        let p = self.plan;
        let mut scratch = vec![N::zero(); p.chunk];
        for c0 in (0..p.lanes).step_by(p.chunk) {
            let m = p.chunk.min(p.lanes - c0);
            self.write_inputs(c0, m);
            self.forward(m);
            let keep = p.tail.as_ref().map_or(self.tape.output, |t| t.sum_in);
            let at = p.val[keep as usize] as usize;
            self.kept[c0..c0 + m].copy_from_slice(&self.v[at..at + m]);
            if self.grads.is_none() {
                continue;
            }
            if let Some(tail) = &p.tail {
                // the adjoint of sum(x) through the affine maps, as the whole-tape replay has it
                let mut gs = N::one();
                for &(c, _) in tail.affine.iter().rev() {
                    gs = N::zero() + gs * N::cst(c);
                }
                let at = p.adj[tail.sum_in as usize];
                if at != NONE {
                    let at = at as usize;
                    self.g[at..at + m]
                        .iter_mut()
                        .for_each(|x| *x = N::zero() + gs);
                }
            }
            self.backward(m, &mut scratch);
            let grads = self.grads.as_mut().expect("grads");
            for (i, &s) in self.tape.inputs.iter().enumerate() {
                let at = p.adj[s as usize];
                if at == NONE {
                    continue;
                }
                let at = at as usize;
                if p.lane[s as usize] {
                    grads[i][c0..c0 + m].copy_from_slice(&self.g[at..at + m]);
                    self.g[at..at + m].fill(N::zero());
                } else if c0 + m == p.lanes {
                    // a uniform input: its adjoint summed over every chunk
                    grads[i][0] = self.g[at];
                    self.g[at] = N::zero();
                }
            }
        }
    }

    /// Writes the inputs' and constants' lanes `c0..c0 + m` into their places.
    #[inline(always)]
    fn write_inputs(&mut self, c0: usize, m: usize) {
        let p = self.plan;
        let slots = self.tape.inputs.iter().zip(self.inputs.iter().copied());
        let consts = self.consts.iter().map(|(s, d)| (s, &d[..]));
        for (&s, src) in slots.chain(consts) {
            let at = p.val[s as usize];
            if at == NONE {
                continue;
            }
            let at = at as usize;
            if p.lane[s as usize] {
                self.v[at..at + m].copy_from_slice(&src[c0..c0 + m]);
            } else {
                self.v[at] = src[0];
            }
        }
    }

    /// The length of slot `s` in a chunk of `m` lanes.
    #[inline(always)]
    fn len(&self, s: u32, m: usize) -> usize {
        if self.plan.lane[s as usize] { m } else { 1 }
    }

    #[inline(always)]
    fn forward(&mut self, m: usize) {
        let p = self.plan;
        let base = self.v.as_mut_ptr();
        for ins in &p.body {
            let (la, lb, lo) = (self.len(ins.a, m), self.len(ins.b, m), self.len(ins.out, m));
            let (a, b, o) = (
                p.val[ins.a as usize] as usize,
                p.val[ins.b as usize] as usize,
                p.val[ins.out as usize] as usize,
            );
            // SAFETY: every place lies inside the arena (`val_len` covers a full chunk of every
            // place), and the output's place is apart from its operands' (`Plan::disjoint`).
            let (out, xa, xb) = unsafe {
                (
                    std::slice::from_raw_parts_mut(base.add(o), lo),
                    std::slice::from_raw_parts(base.add(a) as *const N, la),
                    std::slice::from_raw_parts(base.add(b) as *const N, lb),
                )
            };
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
                Prim::PowF(q) => un(out, xa, |x| apply(Prim::PowF(q), x, x)),
                Prim::Unary(f) => match f {
                    UnaryFn::Exp => un(out, xa, N::exp),
                    UnaryFn::Ln => un(out, xa, N::ln),
                    UnaryFn::Sin => N::sin_slice(out, xa),
                    UnaryFn::Cos => N::cos_slice(out, xa),
                    UnaryFn::Tanh => un(out, xa, N::tanh),
                    UnaryFn::Sqrt => un(out, xa, N::sqrt),
                    UnaryFn::Sigmoid => un(out, xa, sigmoid),
                },
                Prim::Copy => out.copy_from_slice(xa),
                _ => unreachable!("not in a chunked body"),
            }
        }
    }

    #[inline(always)]
    fn backward(&mut self, m: usize, scratch: &mut [N]) {
        let p = self.plan;
        let v: &[N] = self.v;
        let base = self.g.as_mut_ptr();
        for ins in p.body.iter().rev() {
            let go_at = p.adj[ins.out as usize];
            if go_at == NONE {
                continue;
            }
            let n = self.len(ins.out, m);
            let val = |s: u32| {
                let at = p.val[s as usize] as usize;
                &v[at..at + self.len(s, m)]
            };
            // (values not read by the adjoint may have been overwritten: they are not used)
            let (xa, xb, z) = (val(ins.a), val(ins.b), val(ins.out));
            // SAFETY: the output's adjoint place is apart from its operands' (`Plan::disjoint`),
            // and inside the arena.
            let go = unsafe { std::slice::from_raw_parts(base.add(go_at as usize) as *const N, n) };
            let ops = Operands { xa, xb, z, go };
            let adj = |s: u32| {
                let at = p.adj[s as usize];
                // SAFETY: as above; the two operands' places are used one after the other
                (at != NONE).then(|| unsafe {
                    std::slice::from_raw_parts_mut(base.add(at as usize), self.len(s, m))
                })
            };
            match ins.prim {
                Prim::Add => {
                    if let Some(ga) = adj(ins.a) {
                        ops.acc(ga, |_, _, _, g| g);
                    }
                    if let Some(gb) = adj(ins.b) {
                        ops.acc(gb, |_, _, _, g| g);
                    }
                }
                Prim::Sub => {
                    if let Some(ga) = adj(ins.a) {
                        ops.acc(ga, |_, _, _, g| g);
                    }
                    if let Some(gb) = adj(ins.b) {
                        ops.acc(gb, |_, _, _, g| -g);
                    }
                }
                Prim::Mul => {
                    if let Some(ga) = adj(ins.a) {
                        ops.acc(ga, |_, y, _, g| g * y);
                    }
                    if let Some(gb) = adj(ins.b) {
                        ops.acc(gb, |x, _, _, g| g * x);
                    }
                }
                Prim::Div => {
                    if let Some(ga) = adj(ins.a) {
                        ops.acc(ga, |_, y, _, g| g / y);
                    }
                    if let Some(gb) = adj(ins.b) {
                        ops.acc(gb, |_, y, z, g| -(g * z / y));
                    }
                }
                Prim::Copy => {
                    if let Some(ga) = adj(ins.a) {
                        for (x, &g) in ga.iter_mut().zip(go) {
                            *x += g;
                        }
                    }
                }
                prim => {
                    if let Some(ga) = adj(ins.a) {
                        match prim {
                            Prim::Affine(c, _) => {
                                let c = N::cst(c);
                                un_acc(ga, xa, z, go, |_, _, g| g * c)
                            }
                            Prim::Unary(f @ (UnaryFn::Sin | UnaryFn::Cos)) => {
                                sin_cos_acc(f, ga, xa, go, &mut scratch[..n])
                            }
                            Prim::Unary(UnaryFn::Tanh) => {
                                un_acc(ga, xa, z, go, |_, z, g| g * (N::one() - z * z))
                            }
                            Prim::Unary(UnaryFn::Exp) => un_acc(ga, xa, z, go, |_, z, g| g * z),
                            _ => un_acc(ga, xa, z, go, |x, z, g| adjoint(prim, x, x, z, g).0),
                        }
                    }
                }
            }
            // the adjoint was used: zero its place for the next owner
            // SAFETY: as above
            unsafe { std::slice::from_raw_parts_mut(base.add(go_at as usize), n) }.fill(N::zero());
        }
    }
}
