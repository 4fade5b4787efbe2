# PyTorch reference for the `conv2d` benchmark (BENCHMARKS-SPEC.md): input 64x1x28x28 f32,
# conv 1->32 3x3 pad 1, ReLU, conv 32->64 3x3 pad 1, sum; forward + backward w.r.t. input and weights.
#
#   /work/main/bench/reference/.venv/bin/python crates/nabla/examples/_conv2d_bench.py [reps]
#
# With `--nabla BINARY` (the `_conv2d_bench` example, built with `cargo build --release -p nabla
# --example _conv2d_bench`), runs both in alternating rounds in one run and prints the ratio
# nabla / PyTorch of the median step times (RAYON_NUM_THREADS=2 for nabla).
import os, re, statistics, subprocess, sys, time
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(64, 1, 28, 28, requires_grad=True)
w1 = (torch.randn(32, 1, 3, 3) / 3.0).requires_grad_()
w2 = (torch.randn(64, 32, 3, 3) / 17.0).requires_grad_()

def step():
    y = F.conv2d(F.relu(F.conv2d(x, w1, padding=1)), w2, padding=1).sum()
    gx, g1, g2 = torch.autograd.grad(y, (x, w1, w2))
    return y

def torch_times(reps):
    for _ in range(5):
        step()
    ts = []
    c0 = time.process_time()
    for _ in range(reps):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    return ts, (time.process_time() - c0) / reps

args = [a for a in sys.argv[1:]]
binary = None
if "--nabla" in args:
    i = args.index("--nabla")
    binary = args[i + 1]
    del args[i:i + 2]
reps = int(args[0]) if args else 30

if binary is None:
    ts, cpu = torch_times(reps)
    print(f"torch conv2d fwd+bwd: median {statistics.median(ts)*1e3:.2f} ms (min {min(ts)*1e3:.2f}, cpu {cpu*1e3:.2f} ms/step) over {reps}")
    sys.exit()

rounds = int(os.environ.get("ROUNDS", "5"))
tm, nm = [], []
env = dict(os.environ, RAYON_NUM_THREADS="2")
for r in range(rounds):
    ts, cpu = torch_times(reps)
    tm.append(statistics.median(ts))
    out = subprocess.run([binary, str(reps)], env=env, capture_output=True, text=True, check=True).stdout
    nm.append(float(re.search(r"median ([0-9.]+) ms", out).group(1)) / 1e3)
    print(f"round {r}: torch {tm[-1]*1e3:.2f} ms, nabla {nm[-1]*1e3:.2f} ms, ratio {nm[-1]/tm[-1]:.2f}", flush=True)
t, n = statistics.median(tm), statistics.median(nm)
print(f"conv2d fwd+bwd median over {rounds} rounds x {reps} steps: torch {t*1e3:.2f} ms, nabla {n*1e3:.2f} ms; "
      f"time ratio nabla/torch {n/t:.2f} (nabla speed {t/n:.2f}x torch)")
