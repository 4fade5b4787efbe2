//! Timing harness for the `conv2d` benchmark (BENCHMARKS-SPEC.md): input 64x1x28x28 f32, conv 1->32
//! 3x3 pad 1, ReLU, conv 32->64 3x3 pad 1, sum; forward + backward w.r.t. input and weights.
//! Run: RAYON_NUM_THREADS=2 cargo run --release -p nabla --example _conv2d_bench [reps]
use nabla::rand::SeedableRng;
use nabla::{Conv2dOpts, DType, Tensor, value_and_grad};
use std::time::Instant;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the whole process (all threads), in seconds.
fn cpu_time() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; 2 is CLOCK_PROCESS_CPUTIME_ID on Linux.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    let x = Tensor::randn([64, 1, 28, 28], DType::F32, &mut rng);
    let w1 = Tensor::randn([32, 1, 3, 3], DType::F32, &mut rng).scale(1.0 / 3.0);
    let w2 = Tensor::randn([64, 32, 3, 3], DType::F32, &mut rng).scale(1.0 / 17.0);
    let o = Conv2dOpts::default().padding(1);
    let f = |p: &[Tensor]| {
        p[0].conv2d(&p[1], None, o)
            .relu()
            .conv2d(&p[2], None, o)
            .sum()
    };
    let step = || {
        let (y, g) = value_and_grad(f, &[x.clone(), w1.clone(), w2.clone()]);
        std::hint::black_box((y, g));
    };
    for _ in 0..5 {
        step();
    }
    let mut ts = Vec::new();
    let c0 = cpu_time();
    for _ in 0..reps {
        let t = Instant::now();
        step();
        ts.push(t.elapsed().as_secs_f64());
    }
    let cpu = (cpu_time() - c0) / reps as f64;
    let min = ts.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "nabla conv2d fwd+bwd: median {:.2} ms (min {:.2}, cpu {:.2} ms/step) over {reps}",
        median(ts) * 1e3,
        min * 1e3,
        cpu * 1e3
    );
    if std::env::var("PHASES").is_ok() {
        let time = |name: &str, g: &dyn Fn()| {
            let mut ts = Vec::new();
            let c0 = cpu_time();
            for _ in 0..reps {
                let t = Instant::now();
                g();
                ts.push(t.elapsed().as_secs_f64());
            }
            let cpu = (cpu_time() - c0) / reps as f64;
            println!(
                "  {name}: median {:.2} ms, cpu {:.2} ms",
                median(ts) * 1e3,
                cpu * 1e3
            );
        };
        let h = x.conv2d(&w1, None, o).relu();
        let y = h.conv2d(&w2, None, o);
        let gy = Tensor::ones(y.shape(), DType::F32);
        time("conv1 fwd", &|| {
            drop(std::hint::black_box(x.conv2d(&w1, None, o)))
        });
        time("relu", &|| {
            drop(std::hint::black_box(x.conv2d(&w1, None, o).relu()))
        });
        time("conv2 fwd", &|| {
            drop(std::hint::black_box(h.conv2d(&w2, None, o)))
        });
        time("sum", &|| drop(std::hint::black_box(y.sum())));
        let (h2, w2v) = (h.variable(), w2.variable());
        let y2 = h2.conv2d(&w2v, None, o);
        time("conv2 bwd (dx, dw)", &|| {
            drop(std::hint::black_box(y2.backward_with(&gy)))
        });
        let y2 = h.conv2d(&w2v, None, o);
        time("conv2 bwd dw only", &|| {
            drop(std::hint::black_box(y2.backward_with(&gy)))
        });
        let y2 = h2.conv2d(&w2, None, o);
        time("conv2 bwd dx only", &|| {
            drop(std::hint::black_box(y2.backward_with(&gy)))
        });
        let (xv, w1v) = (x.variable(), w1.variable());
        let h1 = xv.conv2d(&w1v, None, o);
        let g1 = Tensor::ones(h1.shape(), DType::F32);
        time("conv1 bwd (dx, dw)", &|| {
            drop(std::hint::black_box(h1.backward_with(&g1)))
        });
        let c1 = x.conv2d(&w1, None, o);
        time("relu bwd (mask * g)", &|| {
            drop(std::hint::black_box(&g1 * &c1.gt_scalar(0.0)))
        });
    }
}
