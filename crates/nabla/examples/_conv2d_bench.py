# PyTorch reference for the `conv2d` benchmark (BENCHMARKS-SPEC.md): input 64x1x28x28 f32,
# conv 1->32 3x3 pad 1, ReLU, conv 32->64 3x3 pad 1, sum; forward + backward w.r.t. input and weights.
# Run: /work/main/bench/reference/.venv/bin/python crates/nabla/examples/_conv2d_bench.py
import statistics, sys, time
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

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
for _ in range(5):
    step()
ts = []
c0 = time.process_time()
for _ in range(reps):
    t = time.perf_counter()
    step()
    ts.append(time.perf_counter() - t)
cpu = (time.process_time() - c0) / reps
print(f"torch conv2d fwd+bwd: median {statistics.median(ts)*1e3:.2f} ms (min {min(ts)*1e3:.2f}, cpu {cpu*1e3:.2f} ms/step) over {reps}")
