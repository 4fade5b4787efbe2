//! rk4-pendulum-batch through `nabla::compile` with several chunk sizes of the chunked replay
//! (`Compiled::chunk_lanes`, 0 = the whole tape at once): median process CPU time of one
//! `value_and_grad` call (robust to other processes on a shared machine), the rounds interleaved
//! so that every size sees the same load. A tuning aid for `nabla::compile::DEFAULT_CHUNK_LANES`:
//!
//! ```text
//! cargo run --release -p nabla-bench --example batch_chunks [rounds] [sizes, e.g. 0,32,64,128]
//! ```

use nabla::Tensor;
use nabla_bench as nb;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let sizes: Vec<usize> = args
        .next()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 16, 32, 64, 128, 256]);
    let params = nb::pendulum_batch_params();
    let fs: Vec<_> = sizes
        .iter()
        .map(|&c| nabla::compile(nb::pendulum_batch_loss as fn(&[Tensor]) -> Tensor).chunk_lanes(c))
        .collect();
    let mut reference = None;
    for (cf, &c) in fs.iter().zip(&sizes) {
        // trace and warm up; every size gives the same loss
        let (loss, _) = cf.value_and_grad(&params);
        let _ = cf.value_and_grad(&params);
        let loss = loss.item();
        println!(
            "chunk {c:>4}: loss {loss}, replayed in chunks of {}",
            cf.stats().chunk_lanes
        );
        assert_eq!(
            *reference.get_or_insert(loss),
            loss,
            "chunk {c}: another loss"
        );
    }
    let mut times = vec![Vec::new(); sizes.len()];
    for _ in 0..rounds {
        for (cf, t) in fs.iter().zip(&mut times) {
            let c0 = nb::cpu_time();
            let out = cf.value_and_grad(&params);
            t.push(nb::cpu_time() - c0);
            drop(out);
        }
    }
    println!("median CPU time of value_and_grad over {rounds} interleaved rounds:");
    for (c, t) in sizes.iter().zip(&times) {
        println!("  chunk {c:>4}: {:>8.2} ms", nb::median(t) * 1e3);
    }
}
