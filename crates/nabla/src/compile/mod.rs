//! Compiled execution: [`compile`] traces a function of tensors once per input signature (shapes
//! and dtype) into a flat tape of primitives and replays it, forward and backward, without
//! building a graph: no node, no reference count, no allocation per operation.
//!
//! What compiles: programs made of elementwise arithmetic (`+ - * /`, operations with Rust scalars,
//! `powf`, `square`, `recip`, `neg`), `exp`, `ln`, `sin`, `cos`, `tanh`, `sqrt`, `sigmoid`, with
//! broadcasting; 2-D `matmul`; views (`reshape`, `permute`/`t`, `broadcast_to`, `narrow`, `slice`,
//! `select`); sums over all or some axes (so `mean`); in one dtype, returning one tensor. Inner
//! `value_and_grad`/`vjp` calls are traced with their backward pass. Loops and Rust control flow
//! that do not depend on values are unrolled by the trace (like `jax.jit`). [`Compiled::hvp`]
//! gives Hessian-vector products by forward over reverse mode on the tape.
//!
//! Guards: during the trace, any read of a traced value that could steer the program or escape the
//! tape (`item`, `to_vec`, comparisons, `sign`, `argmax`, `detach`, ...) marks the trace
//! value-dependent. Such a signature is then never replayed: it runs eagerly on every call, so a
//! branch on a value is always taken afresh (or, with [`Compiled::strict`], the read panics naming
//! the operation, like JAX's concretization error). A program with an operation that has no
//! compiled form falls back to eager the same way. A stale branch is never replayed.
//!
//! Composition: when an input requires grad, carries a forward-mode tangent, or the call runs
//! inside another transform (`grad`, `jvp`, ...), the function runs eagerly so that higher-order
//! derivatives compose exactly as without `compile`.

mod chunk;
mod num;
mod tape;
mod trace;
mod vmath;

use crate::autodiff::{InputGrads, Op, fresh_variable, state};
use crate::dtype::DType;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
pub(crate) use tape::{Prim, UnaryFn};

thread_local! {
    /// While a trace runs: the first node id it may create (0 when no trace runs).
    static TRACE_START: Cell<u64> = const { Cell::new(0) };
    static TRACE_STRICT: Cell<bool> = const { Cell::new(false) };
    /// The first value-dependent read seen by the running trace.
    static TRACE_READ: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The tape the running trace builds.
    static BUILDER: RefCell<Option<trace::Builder>> = const { RefCell::new(None) };
    /// Whether the running trace drops the inputs of the nodes it has lowered (see `lowered_lean`).
    static LEAN: Cell<bool> = const { Cell::new(false) };
}

/// The Hessian-vector product of `f` on the tape of one trace ([`HvpMode::Auto`](crate::HvpMode)),
/// or `None` where `f` does not compile for these inputs (or the call composes with another
/// transform). Directions are checked by the caller.
pub(crate) fn hvp_once<F>(f: &F, xs: &[Tensor], vs: &[Tensor]) -> Option<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    // the whole-tape replay: chunking pays off over many calls, not one
    compile(f).chunk_lanes(0).tape_hvp(xs, vs)
}

/// Called for every graph node created outside `autodiff::record` (leaves, identities): under a
/// trace, lowers it into the tape.
#[inline]
pub(crate) fn recorded(t: &Tensor) {
    if TRACE_START.with(|c| c.get()) != 0 {
        let node = t.0.node.as_ref().expect("recorded");
        let ins: SmallVec<[&Tensor; 2]> = node.inputs.iter().collect();
        lower_op(t, node.id, &*node.op, &ins);
    }
}

/// Called by `autodiff::record` for every operation it records (as node `id`): under a trace,
/// lowers it into the tape at once. Whether the node may then be a [`Lowered`] one without
/// inputs: in a lean trace, an operation at the trace's own level (not inside an inner
/// transform) that lowered. Nothing will run its reverse rule, since the tape differentiates the
/// program, so the values the program no longer holds are freed as it goes, as in an unrecorded
/// evaluation; should a reverse pass reach such a node after all (`backward` inside the compiled
/// function), the trace restarts keeping the full graph.
#[inline]
pub(crate) fn lowered_lean(out: &Tensor, id: u64, op: &dyn Op, inputs: &[&Tensor]) -> bool {
    TRACE_START.with(|c| c.get()) != 0
        && lower_op(out, id, op, inputs)
        && LEAN.with(|c| c.get())
        && state::depth() == 1
        && !inputs.is_empty()
}

/// Lowers operation `op` of `inputs` computing `out` (node `id`); whether it lowered.
#[inline(never)]
fn lower_op(out: &Tensor, id: u64, op: &dyn Op, inputs: &[&Tensor]) -> bool {
    BUILDER.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => match b.as_mut() {
            Some(b) => {
                let _off = state::GradModeGuard::set(false);
                b.record(out, id, op, inputs)
            }
            None => false,
        },
        Err(_) => false,
    })
}

/// What a lean trace could not give: the full graph. Unwinds the trace, which restarts keeping it.
struct NeedsGraph;

/// The operation of a node lowered by a lean trace, whose inputs were dropped.
pub(crate) struct Lowered;

impl Op for Lowered {
    fn name(&self) -> &str {
        "lowered"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, _: &Tensor, _: &[bool]) -> InputGrads {
        needs_graph()
    }
    fn jvp(&self, _: &[Tensor], _: &[Option<Tensor>]) -> Tensor {
        needs_graph()
    }
    fn is_lowered(&self) -> bool {
        true
    }
}

/// Called when a reverse pass reaches a node of a lean trace: restarts the trace with the full
/// graph (a tensor that escaped the trace has no graph to differentiate).
pub(crate) fn needs_graph() -> ! {
    if LEAN.with(|c| c.get()) {
        std::panic::resume_unwind(Box::new(NeedsGraph));
    }
    panic!(
        "compile: a tensor computed inside a compiled function escaped its trace and was \
         differentiated (a compiled function must be pure: return what you need)"
    )
}

/// Called by every operation that reads a tensor's values outside the recorded graph. Under a
/// trace, a read of a traced value makes the trace value-dependent (or panics in strict mode).
#[inline]
pub(crate) fn guard_read(op: &str, t: &Tensor) {
    let start = TRACE_START.with(|c| c.get());
    if start == 0 {
        return;
    }
    let traced = t.0.node.as_ref().is_some_and(|n| n.id >= start);
    if !traced {
        return;
    }
    if TRACE_STRICT.with(|c| c.get()) {
        panic!(
            "compile: `{op}` reads the value of a traced tensor of shape {} (value-dependent \
             control flow cannot be compiled; call the function without `compile`, or drop `strict`)",
            t.shape()
        );
    }
    TRACE_READ.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            *r = Some(format!("`{op}` reads a traced value"));
        }
    });
}

/// The compiled form of a binary elementwise operation, by name.
pub(crate) fn binary_prim(name: &str) -> Option<Prim> {
    Some(match name {
        "add" => Prim::Add,
        "sub" => Prim::Sub,
        "mul" => Prim::Mul,
        "div" => Prim::Div,
        _ => return None,
    })
}

/// The compiled form of a unary elementwise operation, by name.
pub(crate) fn unary_prim(name: &str) -> Option<Prim> {
    Some(Prim::Unary(match name {
        "exp" => UnaryFn::Exp,
        "ln" => UnaryFn::Ln,
        "sin" => UnaryFn::Sin,
        "cos" => UnaryFn::Cos,
        "tanh" => UnaryFn::Tanh,
        "sqrt" => UnaryFn::Sqrt,
        "sigmoid" => UnaryFn::Sigmoid,
        _ => return None,
    }))
}

/// The input signature a trace is valid for.
type Signature = Vec<(DType, Vec<usize>)>;

enum Entry {
    Tape(Arc<tape::Tape>),
    /// This signature runs eagerly, for the reason given.
    Eager(String),
}

/// How often a compiled function traced, replayed and ran eagerly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Traces (one per new input signature).
    pub traces: usize,
    /// Calls answered by replaying a tape.
    pub replays: usize,
    /// Calls run eagerly (value-dependent or uncompilable signature, or under another transform).
    pub eager_calls: usize,
    /// Why the last signature that could not be compiled runs eagerly.
    pub last_fallback: Option<String>,
    /// Instructions in the most recent tape.
    pub tape_len: usize,
    /// Lanes per chunk of the most recent tape's chunked replay (0: replayed whole); see
    /// [`Compiled::chunk_lanes`].
    pub chunk_lanes: usize,
}

/// Lanes per chunk of the chunked replay, by default (see [`Compiled::chunk_lanes`]).
pub const DEFAULT_CHUNK_LANES: usize = 1024;

/// A function compiled by [`compile`].
pub struct Compiled<F> {
    f: F,
    strict: bool,
    chunk: usize,
    cache: Mutex<HashMap<Signature, Entry>>,
    stats: Mutex<CompileStats>,
}

/// Compiles `f`: the first call with a new input signature (shapes, dtype) traces `f` into a
/// tape; later calls replay it. See the [module documentation](self) for what compiles, the
/// guards, and the eager fallback. `f` must be a pure function of its inputs: tensors it captures
/// are constants of the trace (as in `jax.jit`).
///
/// ```
/// use nabla::{compile, value_and_grad, Tensor};
/// let f = |p: &[Tensor]| {
///     let mut y = p[0].clone();
///     for _ in 0..100 {
///         y = (&y * &p[1]).sin() + 0.5;
///     }
///     y
/// };
/// let cf = compile(f);
/// let xs = [Tensor::scalar(0.3f64), Tensor::scalar(1.2f64)];
/// let (y, g) = cf.value_and_grad(&xs); // traces, then replays
/// let (y2, g2) = cf.value_and_grad(&xs); // replays
/// let (ye, ge) = value_and_grad(f, &xs); // eager
/// assert!((y2.item() - ye.item()).abs() < 1e-12 && (g2[1].item() - ge[1].item()).abs() < 1e-12);
/// assert_eq!((y.item(), g[0].item()), (y2.item(), g2[0].item()));
/// assert_eq!(cf.stats().traces, 1);
/// ```
pub fn compile<F>(f: F) -> Compiled<F>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    Compiled {
        f,
        strict: false,
        chunk: DEFAULT_CHUNK_LANES,
        cache: Mutex::new(HashMap::new()),
        stats: Mutex::new(CompileStats::default()),
    }
}

impl<F> Compiled<F>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    /// Panics, naming the operation, when a trace reads a traced value (instead of running that
    /// signature eagerly).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Lanes per chunk of the chunked replay (0: never chunk). A lane-wise program over a batch
    /// (every slot `[n]` or one element, only elementwise operations, the output the batch's sum
    /// or mean, or `[n]`) replays forward and backward over `lanes` lanes at a time, so that a
    /// chunk's values stay in cache; the values and the gradients of `[n]` inputs are bit-identical
    /// to the whole-tape replay (those of 0-d inputs are summed chunk by chunk). Applies to the
    /// signatures traced after the call.
    pub fn chunk_lanes(mut self, lanes: usize) -> Self {
        self.chunk = lanes;
        self
    }

    /// The counters of this compiled function.
    pub fn stats(&self) -> CompileStats {
        self.stats.lock().expect("stats").clone()
    }

    /// The function's value.
    pub fn call(&self, xs: &[Tensor]) -> Tensor {
        self.run(xs, false).0
    }

    /// The value of a one-element function and its gradient with respect to every input, as
    /// [`value_and_grad`](crate::value_and_grad) computes them.
    pub fn value_and_grad(&self, xs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
        let (v, g) = self.run(xs, true);
        (v, g.expect("gradient"))
    }

    /// The Hessian-vector product of a one-element function along `vs` (one direction per
    /// input), jointly over all inputs as [`hvp_with`](crate::hvp_with) computes it: by forward
    /// over reverse mode on the tape (the forward and backward replays over dual numbers), about
    /// one to three compiled gradients' cost. Falls back to eager reverse over reverse where the function
    /// does not compile.
    ///
    /// ```
    /// use nabla::{compile, Tensor};
    /// // f(a, b) = a²·b: H = [[2b, 2a], [2a, 0]]
    /// let cf = compile(|p: &[Tensor]| (p[0].square() * &p[1]).sum());
    /// let xs = [Tensor::scalar(1.0f64), Tensor::scalar(3.0f64)];
    /// let hv = cf.hvp(&xs, &[Tensor::scalar(1.0f64), Tensor::scalar(1.0f64)]);
    /// assert_eq!((hv[0].item(), hv[1].item()), (8.0, 2.0));
    /// ```
    pub fn hvp(&self, xs: &[Tensor], vs: &[Tensor]) -> Vec<Tensor> {
        if xs.len() != vs.len() {
            panic!("hvp: {} inputs but {} directions", xs.len(), vs.len());
        }
        for (x, v) in xs.iter().zip(vs) {
            if x.shape() != v.shape() || x.dtype() != v.dtype() {
                panic!(
                    "hvp: direction {} {} does not match input {} {}",
                    v.shape(),
                    v.dtype(),
                    x.shape(),
                    x.dtype()
                );
            }
        }
        match self.tape_hvp(xs, vs) {
            Some(hv) => hv,
            None => {
                self.stats.lock().expect("stats").eager_calls += 1;
                crate::hvp_with(crate::HvpMode::ReverseOverReverse, &self.f, xs, vs)
            }
        }
    }

    /// The Hessian-vector product on the tape, or `None` where the call would run eagerly.
    fn tape_hvp(&self, xs: &[Tensor], vs: &[Tensor]) -> Option<Vec<Tensor>> {
        // a tracked direction composes with another transform: eager, and no trace for it
        if vs
            .iter()
            .any(|v| v.requires_grad() || !v.0.tangents.is_empty())
        {
            return None;
        }
        let tape = self.tape_for(xs)?;
        if tape.out_numel() != 1 {
            panic!(
                "hvp: the function must return a one-element tensor, got shape {}",
                tape.out_shape()
            );
        }
        Some(tape.hvp(xs, vs))
    }

    fn eager(&self, xs: &[Tensor], grad: bool) -> (Tensor, Option<Vec<Tensor>>) {
        self.stats.lock().expect("stats").eager_calls += 1;
        if grad {
            let (v, g) = crate::value_and_grad(&self.f, xs);
            (v, Some(g))
        } else {
            ((self.f)(xs), None)
        }
    }

    /// The tape for these inputs (traced on the first call with their signature), or `None`
    /// when the call must run eagerly: under another transform, on tracked inputs, or for a
    /// signature that did not compile.
    fn tape_for(&self, xs: &[Tensor]) -> Option<Arc<tape::Tape>> {
        let composing = state::depth() > 0
            || state::forward_active()
            || xs
                .iter()
                .any(|x| x.requires_grad() || !x.0.tangents.is_empty());
        if composing || TRACE_START.with(|c| c.get()) != 0 {
            return None;
        }
        let sig: Signature = xs.iter().map(|x| (x.dtype(), x.dims().to_vec())).collect();
        let found = match self.cache.lock().expect("cache").get(&sig) {
            Some(Entry::Tape(t)) => Some(Some(t.clone())),
            Some(Entry::Eager(_)) => Some(None),
            None => None,
        };
        if let Some(found) = found {
            return found;
        }
        let entry = self.trace(xs);
        let mut stats = self.stats.lock().expect("stats");
        stats.traces += 1;
        let tape = match &entry {
            Entry::Tape(t) => {
                stats.tape_len = t.len();
                stats.chunk_lanes = t.chunk_lanes();
                Some(t.clone())
            }
            Entry::Eager(why) => {
                stats.last_fallback = Some(why.clone());
                None
            }
        };
        drop(stats);
        self.cache.lock().expect("cache").insert(sig, entry);
        tape
    }

    fn run(&self, xs: &[Tensor], grad: bool) -> (Tensor, Option<Vec<Tensor>>) {
        let Some(tape) = self.tape_for(xs) else {
            return self.eager(xs, grad);
        };
        self.stats.lock().expect("stats").replays += 1;
        if grad && tape.out_numel() != 1 {
            panic!(
                "value_and_grad: the function must return a one-element tensor, got shape {}",
                tape.out_shape()
            );
        }
        tape.run(xs, grad)
    }

    /// Runs `f` once on fresh variables with the guards on, lowering what it records. The trace
    /// is lean (see `lower_recorded`) unless `f` runs a reverse pass over the trace's own level
    /// (`backward` inside `f`); then it restarts with the full graph.
    fn trace(&self, xs: &[Tensor]) -> Entry {
        if cfg!(panic = "unwind")
            && let Some(entry) = self.trace_with(xs, true)
        {
            return entry;
        }
        self.trace_with(xs, false)
            .expect("a full trace does not restart")
    }

    /// One trace; `None` when a lean trace must restart with the full graph.
    fn trace_with(&self, xs: &[Tensor], lean: bool) -> Option<Entry> {
        let _on = state::GradModeGuard::set(true);
        // The trace is a transform: an inner `value_and_grad` or `backward` records its backward
        // pass (create_graph), so a gradient that depends on a traced value is lowered with it.
        let _depth = state::DepthGuard::enter();
        let start = state::next_id();
        let vars: Vec<Tensor> = xs.iter().map(fresh_variable).collect();
        let builder = match trace::Builder::new(&vars, start) {
            Ok(b) => b,
            Err(why) => return Some(Entry::Eager(why)),
        };
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                TRACE_START.with(|c| c.set(0));
                TRACE_STRICT.with(|c| c.set(false));
                LEAN.with(|c| c.set(false));
                BUILDER.with(|b| b.borrow_mut().take());
            }
        }
        TRACE_READ.with(|r| *r.borrow_mut() = None);
        BUILDER.with(|b| *b.borrow_mut() = Some(builder));
        TRACE_START.with(|c| c.set(start));
        TRACE_STRICT.with(|c| c.set(self.strict));
        LEAN.with(|c| c.set(lean));
        let reset = Reset;
        let out = if lean {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(&vars)));
            match run {
                Ok(out) => out,
                Err(p) if p.is::<NeedsGraph>() => return None,
                Err(p) => std::panic::resume_unwind(p),
            }
        } else {
            (self.f)(&vars)
        };
        let builder = BUILDER.with(|b| b.borrow_mut().take()).expect("builder");
        drop(reset);
        if let Some(why) = TRACE_READ.with(|r| r.borrow_mut().take()) {
            return Some(Entry::Eager(why));
        }
        Some(match builder.finish(&out) {
            Ok(t) => Entry::Tape(Arc::new(t.with_chunks(self.chunk))),
            Err(why) => {
                if self.strict {
                    panic!("compile: {why}");
                }
                Entry::Eager(why)
            }
        })
    }
}
