//! graph-memory: resident memory per recorded scalar operation, and what is left after the graph is
//! dropped. Run in a fresh process (the figures are deltas of this process's resident memory).

use crate::scalar_chain_inputs;
use nabla::Tensor;
use std::time::Instant;

/// Resident memory figures of one large recorded graph.
#[derive(Debug, Clone)]
pub struct GraphMemory {
    /// Recorded operations (2 per chain step).
    pub ops: usize,
    /// Resident bytes before the forward pass.
    pub rss_before: u64,
    /// Resident bytes with the graph alive, after the forward pass.
    pub rss_graph: u64,
    /// Peak resident bytes of the process (getrusage), after the backward pass.
    pub rss_peak: u64,
    /// Resident bytes once the graph, the output and the gradients are dropped.
    pub rss_after_drop: u64,
    /// Resident bytes after `malloc_trim(0)` (glibc only: it returns the free pages inside the heap
    /// to the kernel), and the seconds it took; `None` with another C library.
    pub rss_after_trim: Option<u64>,
    pub trim_s: Option<f64>,
    /// Seconds of the forward pass, the backward pass and the drop.
    pub forward_s: f64,
    pub backward_s: f64,
    pub drop_s: f64,
    /// The value and the gradient w.r.t. `(x, w)` (for the cross-check with the references).
    pub y: f64,
    pub grad: [f64; 2],
}

/// Records `y = x; steps × (y = y·w; y = y + 0.001)` (scalar-chain with `steps` steps), runs the
/// backward pass and drops everything, sampling resident memory along the way.
pub fn graph_memory(steps: usize) -> GraphMemory {
    let [x, w] = scalar_chain_inputs();
    let (x, w) = (x.variable(), w.variable());
    let rss = || crate::rss_bytes().unwrap_or(0);
    let rss_before = rss();
    let t = Instant::now();
    let mut y = x.clone();
    for _ in 0..steps {
        y = &y * &w;
        y = &y + 0.001;
    }
    let forward_s = t.elapsed().as_secs_f64();
    let rss_graph = rss();
    let t = Instant::now();
    let grads = y.backward();
    let backward_s = t.elapsed().as_secs_f64();
    let rss_peak = peak_rss_bytes().unwrap_or(0);
    let value = y.item();
    let grad = [
        grads.get(&x).map_or(0.0, Tensor::item),
        grads.get(&w).map_or(0.0, Tensor::item),
    ];
    let t = Instant::now();
    drop(grads);
    drop(y);
    let drop_s = t.elapsed().as_secs_f64();
    let rss_after_drop = rss();
    let (rss_after_trim, trim_s) = match trim() {
        Some(s) => (Some(rss()), Some(s)),
        None => (None, None),
    };
    GraphMemory {
        ops: 2 * steps,
        rss_before,
        rss_graph,
        rss_peak,
        rss_after_drop,
        rss_after_trim,
        trim_s,
        forward_s,
        backward_s,
        drop_s,
        y: value,
        grad,
    }
}

/// Calls glibc's `malloc_trim(0)`; returns the seconds it took.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> Option<f64> {
    let t = Instant::now();
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    Some(t.elapsed().as_secs_f64())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> Option<f64> {
    None
}

/// Peak resident bytes of this process so far (`getrusage`; Linux reports KiB).
pub fn peak_rss_bytes() -> Option<u64> {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (rc == 0).then(|| ru.ru_maxrss as u64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dropped graph of 600k nodes gives most of its memory back (nabla trims glibc's heap after
    /// large graphs) and the gradient is right: y = 1 exactly (the chain's fixed point), dy/dx = wⁿ.
    #[test]
    fn large_graph_memory_is_returned() {
        let g = graph_memory(300_000);
        assert_eq!(g.ops, 600_000);
        assert!((g.y - 1.0).abs() < 1e-6, "{}", g.y);
        assert!(g.grad[0].abs() < 1e-30, "{}", g.grad[0]);
        let graph = g.rss_graph.saturating_sub(g.rss_before);
        assert!(graph > 50 << 20, "graph of {graph} bytes");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(
            g.rss_after_drop < g.rss_before + graph / 4,
            "{} MiB left of a {} MiB graph",
            (g.rss_after_drop - g.rss_before) >> 20,
            graph >> 20
        );
    }
}
