//! The trace: while [`compile`](super::compile) runs a function on fresh variables, every
//! operation it records is lowered into the tape at once, while its node and inputs are still in
//! cache (`Builder::record`, called by `autodiff::record`). There is no walk of the finished graph:
//! at the end, a backward liveness pass over the flat instruction list drops what the output does
//! not use and packs the arena (`Builder::finish`).
//!
//! An operation that cannot be lowered does not end the trace: its slot is marked failed, and the
//! failure spreads to whatever uses it. Only a failure that reaches the output makes the signature
//! run eagerly, so a value the function computes and throws away costs nothing.

use super::tape::{Instr, Prim, Slot, Tape, UnaryFn};
use crate::autodiff::Op;
use crate::dtype::DType;
use crate::tensor::{Shape, Tensor};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// A node without a slot yet.
const NO_SLOT: u32 = u32::MAX;
/// Slot numbers from here up are failures: `FAILED + i` failed for the reason `fails[i]`.
const FAILED: u32 = 1 << 31;

/// How many recent uses of an operand common subexpression elimination looks through.
const CSE_LIST: usize = 8;
/// Instructions up to this depth are found by common subexpression elimination wherever they are.
const CSE_SHALLOW: u16 = 6;

/// A pure elementwise instruction: its primitive's key and operand slots.
type CseKey = ((u8, u64, u64), u32, u32);

/// What identifies a pure elementwise primitive (its kind and constants), for common
/// subexpression elimination; `None` for the others (their index maps are per instruction).
fn cse_key(p: Prim) -> Option<(u8, u64, u64)> {
    let unary = |f: UnaryFn| f as u8;
    Some(match p {
        Prim::Add => (0, 0, 0),
        Prim::Sub => (1, 0, 0),
        Prim::Mul => (2, 0, 0),
        Prim::Div => (3, 0, 0),
        Prim::Affine(c, d) => (4, c.to_bits(), d.to_bits()),
        Prim::RDiv(c) => (5, c.to_bits(), 0),
        Prim::PowF(q) => (6, q.to_bits(), 0),
        Prim::Unary(f) => (7, unary(f) as u64, 0),
        Prim::SumAll => (8, 0, 0),
        Prim::Copy => (9, 0, 0),
        _ => return None,
    })
}

/// Why a value could not be lowered: a new reason, or the failed slot of an operand it uses.
enum Failure {
    Why(String),
    Slot(u32),
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure::Why(why)
    }
}

/// The tape under construction.
pub(super) struct Builder {
    dtype: DType,
    /// The first node id of the trace; `by_node[id - start]` is the slot of node `id`.
    start: u64,
    by_node: Vec<u32>,
    /// The elementwise instructions of invariant operands pushed so far, by primitive and
    /// operands (see `push`).
    seen: FxHashMap<CseKey, u32>,
    /// Each slot's depth: 0 for inputs and constants, else one more than its deepest operand's.
    depth: Vec<u16>,
    /// The newest elementwise instruction whose newer operand is each slot, and for each
    /// instruction the next older one with the same newer operand (`NO_SLOT` ends a list).
    first_use: Vec<u32>,
    next_use: Vec<u32>,
    slots: Vec<Slot>,
    instrs: Vec<Instr>,
    inputs: Vec<u32>,
    consts: Vec<(u32, Vec<f64>)>,
    maps: Vec<Vec<u32>>,
    arena_len: usize,
    fails: Vec<String>,
}

/// The element indices `0..n` of a tensor of `shape`, in `dtype` (exact below 2^24 elements).
fn indices(shape: &Shape, dtype: DType) -> Tensor {
    let n = shape.numel();
    Tensor::from_vec(
        (0..n).map(|i| i as f64).collect::<Vec<f64>>(),
        shape.clone(),
    )
    .to_dtype(dtype)
}

/// A tensor of indices as an index map.
fn index_map(t: &Tensor) -> Vec<u32> {
    t.values_as::<f64>().into_iter().map(|v| v as u32).collect()
}

impl Builder {
    /// A builder whose inputs are the variables `vars` (fresh leaves created from id `start` on,
    /// the trace's first id), all of one dtype.
    pub(super) fn new(vars: &[Tensor], start: u64) -> Result<Builder, String> {
        let dtype = vars.first().map_or(DType::F64, Tensor::dtype);
        let id = |v: &Tensor| v.0.node.as_ref().expect("variable").id;
        let mut b = Builder {
            dtype,
            start,
            by_node: Vec::with_capacity(1024),
            seen: FxHashMap::default(),
            depth: Vec::with_capacity(1024),
            first_use: Vec::with_capacity(1024),
            next_use: Vec::with_capacity(1024),
            slots: Vec::with_capacity(1024),
            instrs: Vec::with_capacity(1024),
            inputs: Vec::new(),
            consts: Vec::new(),
            maps: Vec::new(),
            arena_len: 0,
            fails: Vec::new(),
        };
        for v in vars {
            if v.dtype() != dtype {
                return Err(format!("mixed dtypes ({} and {} inputs)", dtype, v.dtype()));
            }
            let s = b.slot(v.numel());
            b.set(id(v), s);
            b.inputs.push(s);
        }
        Ok(b)
    }

    /// Lowers operation `op` of `inputs` that computed `t`, recorded as node `id`; whether it
    /// lowered (else the node is marked failed).
    pub(super) fn record(&mut self, t: &Tensor, id: u64, op: &dyn Op, inputs: &[&Tensor]) -> bool {
        if id < self.start {
            return false;
        }
        let s = match self.lower(t, op, inputs) {
            Ok(s) => s,
            Err(Failure::Slot(s)) => s,
            Err(Failure::Why(why)) => {
                self.fails.push(why);
                FAILED + (self.fails.len() - 1) as u32
            }
        };
        self.set(id, s);
        s < FAILED
    }

    fn set(&mut self, id: u64, s: u32) {
        let k = (id - self.start) as usize;
        if k >= self.by_node.len() {
            self.by_node
                .resize((k + 1).max(2 * self.by_node.len()), NO_SLOT);
        }
        self.by_node[k] = s;
    }

    /// The tape computing `out`: the instructions it needs, in recorded order, over a packed arena.
    pub(super) fn finish(self, out: &Tensor) -> Result<Tape, String> {
        let mut b = self;
        if out.dtype() != b.dtype {
            return Err(format!(
                "mixed dtypes ({} input, {} output)",
                b.dtype,
                out.dtype()
            ));
        }
        let output = match b.operand(out) {
            Ok(s) => s,
            Err(Failure::Why(why)) => return Err(why),
            Err(Failure::Slot(s)) => return Err(b.fails[(s - FAILED) as usize].clone()),
        };
        // liveness, backwards over the recorded order (an instruction's operands come before it)
        let mut live = vec![false; b.slots.len()];
        live[output as usize] = true;
        for &s in &b.inputs {
            live[s as usize] = true;
        }
        for i in b.instrs.iter().rev() {
            if live[i.out as usize] {
                live[i.a as usize] = true;
                live[i.b as usize] = true;
            }
        }
        // the live slots, renumbered and packed in order
        let mut renum = vec![NO_SLOT; b.slots.len()];
        let mut slots = Vec::with_capacity(b.slots.len());
        let mut off = 0;
        for (k, s) in b.slots.iter().enumerate() {
            if live[k] {
                renum[k] = slots.len() as u32;
                slots.push(Slot { off, len: s.len });
                off += s.len;
            }
        }
        let mut map_renum = vec![NO_SLOT; b.maps.len()];
        let mut maps = Vec::new();
        let mut keep_map = |m: u32| {
            if map_renum[m as usize] == NO_SLOT {
                map_renum[m as usize] = maps.len() as u32;
                maps.push(std::mem::take(&mut b.maps[m as usize]));
            }
            map_renum[m as usize]
        };
        let instrs: Vec<Instr> = b
            .instrs
            .iter()
            .filter(|i| live[i.out as usize])
            .map(|i| Instr {
                prim: match i.prim {
                    Prim::Gather(m) => Prim::Gather(keep_map(m)),
                    Prim::ScatterAdd(m) => Prim::ScatterAdd(keep_map(m)),
                    p => p,
                },
                a: renum[i.a as usize],
                b: renum[i.b as usize],
                out: renum[i.out as usize],
            })
            .collect();
        let consts = b
            .consts
            .into_iter()
            .filter(|(s, _)| live[*s as usize])
            .map(|(s, d)| (renum[s as usize], d))
            .collect();
        let inputs = b.inputs.iter().map(|&s| renum[s as usize]).collect();
        Ok(Tape::new(
            b.dtype,
            slots,
            instrs,
            inputs,
            consts,
            renum[output as usize],
            out.shape().clone(),
            maps,
        ))
    }

    /// A new instruction writing a new slot of `len` elements, or the slot of an earlier
    /// instruction that computes the same elementwise primitive of the same operands (common
    /// subexpressions: `g / l` evaluated at every step of a solver is computed once).
    ///
    /// Shallow instructions (a few operations from the inputs and constants, like `g / l`, which
    /// a loop repeats at every step) are found in a hash table; the deep ones, most of a long
    /// program, in a short list of the recent uses of their newer operand, which stays in cache
    /// where a table of every instruction would not (the first call of a compiled simulator is
    /// mostly this bookkeeping).
    fn push(&mut self, prim: Prim, a: u32, b: u32, len: usize) -> u32 {
        let depth = 1 + self.depth[a as usize]
            .max(self.depth[b as usize])
            .min(u16::MAX - 1);
        let Some(k) = cse_key(prim) else {
            return self.instr(prim, a, b, len, depth);
        };
        if depth <= CSE_SHALLOW {
            if let Some(&out) = self.seen.get(&(k, a, b)) {
                return out;
            }
            let out = self.instr(prim, a, b, len, depth);
            self.seen.insert((k, a, b), out);
            return out;
        }
        let newer = a.max(b) as usize;
        let mut i = self.first_use[newer];
        for _ in 0..CSE_LIST {
            if i == NO_SLOT {
                break;
            }
            let x = self.instrs[i as usize];
            if x.a == a && x.b == b && cse_key(x.prim) == Some(k) {
                return x.out;
            }
            i = self.next_use[i as usize];
        }
        let out = self.instr(prim, a, b, len, depth);
        let at = (self.instrs.len() - 1) as u32;
        self.next_use[at as usize] = self.first_use[newer];
        self.first_use[newer] = at;
        out
    }

    /// A new instruction writing a new slot.
    fn instr(&mut self, prim: Prim, a: u32, b: u32, len: usize, depth: u16) -> u32 {
        let out = self.slot(len);
        self.depth[out as usize] = depth;
        self.instrs.push(Instr { prim, a, b, out });
        self.next_use.push(NO_SLOT);
        out
    }

    /// A new index map.
    fn map(&mut self, m: Vec<u32>) -> u32 {
        self.maps.push(m);
        (self.maps.len() - 1) as u32
    }

    /// A new slot of `len` elements (of depth 0: an input or a constant, until told otherwise).
    fn slot(&mut self, len: usize) -> u32 {
        self.depth.push(0);
        self.first_use.push(NO_SLOT);
        self.slots.push(Slot {
            off: self.arena_len,
            len,
        });
        self.arena_len += len;
        (self.slots.len() - 1) as u32
    }

    /// A slot holding the values of `t`, a constant of the tape.
    fn constant(&mut self, t: &Tensor) -> u32 {
        let data: Vec<f64> = t.values_as();
        let s = self.slot(data.len());
        self.consts.push((s, data));
        s
    }

    /// The slot holding `t`: the result of a lowered node, or a new constant.
    fn operand(&mut self, t: &Tensor) -> Result<u32, Failure> {
        if t.dtype() != self.dtype {
            return Err(format!("mixed dtypes ({} and {})", t.dtype(), self.dtype).into());
        }
        let Some(node) = t.0.node.as_ref() else {
            return Ok(self.constant(t));
        };
        if node.id < self.start {
            return Err("the function captures a tensor that requires grad"
                .to_string()
                .into());
        }
        match self.by_node.get((node.id - self.start) as usize) {
            Some(&s) if s >= FAILED && s != NO_SLOT => Err(Failure::Slot(s)),
            Some(&s) if s != NO_SLOT => Ok(s),
            _ => Err(format!(
                "a tensor of shape {} was recorded outside the trace (another thread?)",
                t.shape()
            )
            .into()),
        }
    }

    fn lower(&mut self, t: &Tensor, op: &dyn Op, ins: &[&Tensor]) -> Result<u32, Failure> {
        let name = op.name();
        if ins.is_empty() {
            // a variable created inside the trace (an inner transform's leaf over a constant):
            // a constant of the tape
            if t.dtype() != self.dtype {
                return Err(format!("mixed dtypes ({} and {})", t.dtype(), self.dtype).into());
            }
            return Ok(self.constant(t));
        }
        let prim = op
            .lower()
            .ok_or_else(|| format!("operation `{name}` has no compiled form"))?;
        let n = t.numel();
        // the rules take owned inputs (only the linear views' index maps call them)
        let owned = || {
            ins.iter()
                .map(|&x| x.clone())
                .collect::<SmallVec<[Tensor; 2]>>()
        };
        if n >= 1 << 24 || ins.iter().any(|x| x.numel() >= 1 << 24) {
            return Err(format!("`{name}` on more than 2^24 elements").into());
        }
        let a = self.operand(ins[0])?;
        let b = if ins.len() > 1 {
            self.operand(ins[1])?
        } else {
            a
        };
        Ok(match prim {
            Prim::SumAll if n == 1 => self.push(prim, a, b, n),
            Prim::Copy if ins[0].numel() == n => self.push(prim, a, b, n),
            Prim::Linear if ins.len() == 1 => {
                // a linear view is its own forward rule: applied to the indices, it gives them
                let idx = indices(ins[0].shape(), ins[0].dtype());
                let m = index_map(&op.jvp(&owned(), &[Some(idx)]));
                if m.len() != n {
                    return Err(
                        format!("internal: `{name}` index map of {} for {n}", m.len()).into(),
                    );
                }
                let m = self.map(m);
                self.push(Prim::Gather(m), a, a, n)
            }
            Prim::ReduceLinear if ins.len() == 1 => {
                // the reverse rule of a sum broadcasts the output's indices over the input
                let idx = indices(t.shape(), t.dtype());
                let g = op.vjp(&owned(), t, &idx, &[true]);
                let Some(Some(g)) = g.into_iter().next() else {
                    return Err(format!("internal: `{name}` has no reverse rule").into());
                };
                let m = index_map(&g);
                if m.len() != ins[0].numel() {
                    return Err(format!("internal: `{name}` index map of {}", m.len()).into());
                }
                let m = self.map(m);
                self.push(Prim::ScatterAdd(m), a, a, n)
            }
            Prim::MatMul(..) => {
                let (da, db) = (ins[0].dims(), ins[1].dims());
                if da.len() != 2 || db.len() != 2 {
                    return Err(format!(
                        "`matmul` on shapes {}, {} (only [m, k] @ [k, n] is compiled)",
                        ins[0].shape(),
                        ins[1].shape()
                    )
                    .into());
                }
                let p = Prim::MatMul(da[0] as u32, da[1] as u32, db[1] as u32);
                self.push(p, a, b, n)
            }
            Prim::SumAll | Prim::Copy | Prim::Linear | Prim::ReduceLinear => {
                let shapes: Vec<String> = ins.iter().map(|x| x.shape().to_string()).collect();
                return Err(format!("`{name}` on shapes {}", shapes.join(", ")).into());
            }
            _ => {
                // elementwise: an operand of another shape (not one element) is first expanded
                let expand = |b: &mut Builder, x: &Tensor, s: u32| -> u32 {
                    if x.numel() == 1 || x.shape() == t.shape() {
                        return s;
                    }
                    // (the operation ran, so x broadcasts to the output's shape)
                    let idx = indices(x.shape(), x.dtype());
                    let m = b.map(index_map(&idx.broadcast_to(t.shape())));
                    b.push(Prim::Gather(m), s, s, n)
                };
                let a = expand(self, ins[0], a);
                let b = if ins.len() > 1 {
                    expand(self, ins[1], b)
                } else {
                    a
                };
                self.push(prim, a, b, n)
            }
        })
    }
}
