"""Times the `lstm` benchmark (BENCHMARKS-SPEC.md) with torch.nn.LSTM on 2 threads.

LSTM input 32, hidden 128, 50 steps, batch 16, batch_first, inputs N(0, 1); loss = sum of all hidden
outputs; forward + backward w.r.t. all weights. Prints the median time per iteration.
Usage: lstm_torch.py [reps] [lstm|gru|rnn]  (the same shapes for the GRU and the tanh RNN).
"""
import statistics
import sys
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)
B, T, I, H = 16, 50, 32, 128
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
kind = sys.argv[2] if len(sys.argv) > 2 else "lstm"
lstm = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](I, H, batch_first=True)
x = torch.randn(B, T, I)


def step():
    lstm.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    out.sum().backward()


for _ in range(30):
    step()
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
med = statistics.median(times)
p10 = sorted(times)[reps // 10]
print(f"torch {kind} fwd+bwd: median {med * 1e3:.3f} ms  p10 {p10 * 1e3:.3f} ms  min {min(times) * 1e3:.3f} ms  ({reps} runs)")
