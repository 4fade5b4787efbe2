#!/usr/bin/env python3
"""Side-by-side benchmark driver (called by bench/run.sh; standard library only).

For each benchmark it runs `nabla-bench` and the reference scripts (PyTorch eager, JAX) as separate
processes in alternating rounds (odd rounds nabla first, even rounds the references first), so the
noise of a shared machine hits both sides. Each process does its own warm-up and timed repeats and
prints JSON lines with the median of its repeats. Here:

  * a side's time is the median, over rounds, of its per-round medians;
  * a ratio is the median, over rounds, of (reference time / nabla time) within the same round,
    so ratio > 1 means nabla is faster;
  * everything goes to bench/results/latest.json and a Markdown summary bench/results/latest.md.

Threads: every process runs under `taskset -c <cpus>` (default 0,1); nabla-bench gets `--threads 2`
(its rayon pool), the PyTorch script `torch.set_num_threads(2)` (with OMP_WAIT_POLICY=PASSIVE, see
--omp-wait-policy), and XLA sizes its pools from the CPUs it may use (the affinity mask).
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "bench" / "reference"

ALL = ["scalar-chain", "rk4-pendulum", "matmul", "conv2d", "mlp-step", "lstm", "cnn-step", "mlp-memory"]
JAX_BENCHES = {"scalar-chain", "rk4-pendulum"}
# Benchmarks measured once (not in rounds): long and not a speed ratio.
SINGLE_ROUND = {"mlp-memory"}

# (benchmark, nabla variant, nabla metric, reference impl, reference variant, reference metric,
#  target on reference_time / nabla_time or None, description)
COMPARISONS = [
    ("scalar-chain", "record", "median_s", "pytorch", "record", "median_s", 30.0,
     "10k recorded ops, fwd+bwd, vs PyTorch eager"),
    ("scalar-chain", "no-grad", "median_s", "pytorch", "no-grad", "median_s", None,
     "10k ops without recording, vs PyTorch eager (no_grad)"),
    ("scalar-chain", "record", "median_s", "jax", "grad-fori", "median_s", None,
     "vs JAX jit(value_and_grad), fori_loop, steady state"),
    ("scalar-chain", "record", "median_s", "jax", "grad-unrolled", "median_s", None,
     "vs JAX jit(value_and_grad), unrolled loop, steady state"),
    ("scalar-chain", "record", "first_s", "jax", "grad-unrolled", "first_s", None,
     "first call vs JAX first call (trace+compile+run), unrolled"),
    ("rk4-pendulum", "grad", "median_s", "pytorch", "grad", "median_s", 30.0,
     "gradient through 1,000 RK4 steps vs PyTorch eager"),
    ("rk4-pendulum", "grad", "first_s", "jax", "grad-unrolled", "first_s", 1.0,
     "first call vs JAX first call (trace+compile+run), unrolled loop"),
    ("rk4-pendulum", "grad", "first_s", "jax", "grad-fori", "first_s", 1.0,
     "first call vs JAX first call (trace+compile+run), fori_loop"),
    ("rk4-pendulum", "grad", "median_s", "jax", "grad-unrolled", "median_s", None,
     "vs JAX jitted steady state, unrolled loop"),
    ("rk4-pendulum", "grad", "median_s", "jax", "grad-fori", "median_s", None,
     "vs JAX jitted steady state, fori_loop"),
    ("matmul", "256", "median_s", "pytorch", "256", "median_s", None, "256×256 f32 vs PyTorch"),
    ("matmul", "512", "median_s", "pytorch", "512", "median_s", None, "512×512 f32 vs PyTorch"),
    ("matmul", "1024", "median_s", "pytorch", "1024", "median_s", 0.8, "1024×1024 f32 vs PyTorch"),
    ("conv2d", "fwd+bwd", "median_s", "pytorch", "fwd+bwd", "median_s", 0.7,
     "two 3×3 convs + ReLU, fwd+bwd vs PyTorch"),
    ("mlp-step", "batch128", "median_s", "pytorch", "batch128", "median_s", 1.0,
     "MLP Adam step, batch 128, vs PyTorch"),
    ("mlp-step", "batch1", "median_s", "pytorch", "batch1", "median_s", 5.0,
     "MLP Adam step, batch 1, vs PyTorch"),
    ("lstm", "fwd+bwd", "median_s", "pytorch", "fwd+bwd", "median_s", 1.0,
     "LSTM fwd+bwd vs torch.nn.LSTM"),
    ("cnn-step", "batch64", "median_s", "pytorch", "batch64", "median_s", 0.7,
     "CNN Adam step, batch 64, vs PyTorch"),
    ("mlp-memory", "batch128", "median_s", "pytorch", "batch128", "median_s", None,
     "10k MLP steps: time per step (memory below)"),
]

IMPL_NAMES = {"nabla": "nabla", "nabla+mimalloc": "nabla+mimalloc", "pytorch": "PyTorch", "jax": "JAX"}


# ----- machine -----------------------------------------------------------------------------------


def cpu_info(threads):
    info = {"model": platform.processor() or "unknown", "mhz": None, "flags": [], "logical_cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                info["model"] = value
            elif key == "cpu MHz" and info["mhz"] is None:
                info["mhz"] = float(value)
            elif key == "flags" and not info["flags"]:
                info["flags"] = value.split()
            elif key == "cpu family":
                info["family"] = int(value)
            elif key == "model" and "model_number" not in info:
                info["model_number"] = int(value)
            elif key == "vendor_id":
                info["vendor"] = value
    except OSError:
        pass
    try:
        info["hypervisor"] = [
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Hypervisor vendor")
        ][0]
    except (OSError, IndexError):
        pass
    flags = set(info["flags"])
    if {"avx2", "fma"} <= flags:
        fpc, why = 32, "AVX2+FMA, 2 FMA pipes × 8 f32 lanes × 2 flop (Zen 2/3/4, Intel Haswell and later)"
    elif "avx" in flags:
        fpc, why = 16, "AVX without FMA: 8-lane add + 8-lane mul per cycle"
    else:
        fpc, why = 8, "SSE: 4-lane add + 4-lane mul per cycle"
    info["flops_per_cycle_per_core"] = fpc
    info["peak_assumption"] = why
    if info["mhz"]:
        info["peak_gflops"] = fpc * threads * info["mhz"] / 1000.0
        info["peak_formula"] = f"{fpc} flop/cycle/core × {threads} cores × {info['mhz'] / 1000:.3f} GHz"
    info.pop("flags")
    return info


def versions(python):
    v = {"rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()}
    out = subprocess.run(
        [python, "-c", "import torch, jax, numpy, sys; print(torch.__version__, jax.__version__, numpy.__version__, sys.version.split()[0])"],
        capture_output=True, text=True,
    ).stdout.split()
    if len(out) == 4:
        v.update(torch=out[0], jax=out[1], numpy=out[2], python=out[3])
    return v


# ----- running -----------------------------------------------------------------------------------


def _rss(pid):
    """Resident bytes of a process and its children (the JAX compile runs in the Python process)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total


def run_json(cmd, log, timeout, max_rss=None, env=None):
    """Runs a command; returns (the JSON lines it printed, its exit status, why it was stopped or None).
    It is killed after `timeout` seconds or when its resident memory passes `max_rss` bytes."""
    log.write(f"$ {' '.join(f'{k}={v}' for k, v in (env or {}).items())} {shlex.join(cmd)}\n")
    log.flush()
    t = time.perf_counter()
    stopped = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}) as p:
        import threading

        chunks = {"out": [], "err": []}
        readers = [threading.Thread(target=lambda f, k: chunks[k].append(f.read()), args=(f, k))
                   for f, k in ((p.stdout, "out"), (p.stderr, "err"))]
        for r in readers:
            r.start()
        while p.poll() is None:
            elapsed = time.perf_counter() - t
            if elapsed > timeout:
                stopped = f"stopped after {elapsed:.0f} s (limit {timeout} s)"
            elif max_rss and _rss(p.pid) > max_rss:
                stopped = f"stopped after {elapsed:.0f} s at {_rss(p.pid) / 2**30:.1f} GiB resident (limit {max_rss / 2**30:.1f} GiB)"
            if stopped:
                p.kill()
                break
            time.sleep(0.2)
        p.wait()
        for r in readers:
            r.join()
        out, err, rc = "".join(chunks["out"]), "".join(chunks["err"]), p.returncode
    elapsed = time.perf_counter() - t
    log.write(out + err + f"[exit {rc}, {elapsed:.1f} s{', ' + stopped if stopped else ''}]\n")
    log.flush()
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if rc != 0 and not stopped:
        sys.stderr.write(f"harness: {shlex.join(cmd)} exited with {rc}: {err.strip()[-500:]}\n")
    return records, rc, stopped, elapsed


def cpu_idle(seconds=0.5):
    """Fraction of CPU time that was idle over the next `seconds` (all CPUs)."""
    def snap():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return f[3] + f[4], sum(f)

    try:
        i0, t0 = snap()
        time.sleep(seconds)
        i1, t1 = snap()
        return (i1 - i0) / max(1, t1 - t0)
    except (OSError, ValueError, IndexError):
        return None


def wait_for_idle(args):
    """Waits (at most --wait-max s) until the CPUs are at least --wait-idle idle; returns the idle fraction."""
    start = time.perf_counter()
    while True:
        idle = cpu_idle()
        if idle is None or args.wait_idle <= 0 or idle >= args.wait_idle or time.perf_counter() - start > args.wait_max:
            return idle


def jobs(args, name, rnd):
    """The processes of one round: (impl, command, limits) with limits = (timeout, max_rss, variant)."""
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    common = ["--threads", str(args.threads), "--round", str(rnd)]
    sizes = ["--sizes", args.sizes] if name == "matmul" else []
    out = [
        ("nabla", pin + [str(args.nabla), name] + common + sizes, (args.timeout, None, None)),
    ]
    if args.nabla_alt:
        out.append((args.nabla_alt_label, pin + [args.nabla_alt, name] + common + sizes, (args.timeout, None, None)))
    out += [
        ("pytorch", pin + [args.python, str(REF / "torch_bench.py"), name, "--data", args.data] + common + sizes,
         (args.timeout, None, None)),
    ]
    if name in JAX_BENCHES and not args.no_jax:
        jax = pin + [args.python, str(REF / "jax_bench.py"), name] + common
        out.append(("jax", jax + ["--variants", "fori"], (args.timeout, None, None)))
        if args.jax_unrolled == "all" or (args.jax_unrolled == "once" and rnd == 1):
            # XLA compiles the unrolled program for minutes and many GiB: bounded, and reported as a
            # lower bound on JAX's first call when it does not finish.
            out.append(("jax", jax + ["--variants", "unrolled"],
                        (args.unrolled_limit, args.unrolled_max_gib * 2**30, "grad-unrolled")))
    return out


# ----- aggregation -------------------------------------------------------------------------------


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def aggregate(records):
    groups = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        groups.setdefault((r["name"], r["impl"], r["variant"]), []).append(r)
    summary = []
    for (name, impl, variant), rs in groups.items():
        s = {
            "name": name, "impl": impl, "variant": variant, "rounds": len(rs),
            "median_s": med([r["median_s"] for r in rs]),
            "first_s": med([r.get("first_s") for r in rs]),
            "min_s": min(r["min_s"] for r in rs),
            "cpu_median_s": med([r.get("cpu_median_s") for r in rs]),
            "repeats_per_round": rs[0].get("repeats"),
        }
        if "gflops" in rs[0]:
            s["gflops"] = 2 * rs[0]["n"] ** 3 / s["median_s"] / 1e9
        for key in ("loss", "grad", "y", "check", "rss_max_growth_after_100_mib", "rss_at_100_mib", "flat"):
            if key in rs[-1]:
                s[key] = rs[-1][key]
        summary.append(s)
    return groups, summary


def did_not_finish(records):
    return {(r["name"], r["impl"], r["variant"]): r for r in records if r.get("status") == "did-not-finish"}


def compare(groups, unavailable, dnf, alt_label=None):
    rows = []
    cases = [(c, "nabla") for c in COMPARISONS]
    if alt_label:
        # The alternative nabla build (e.g. with mimalloc) against the same references, after the others.
        cases += [(c, alt_label) for c in COMPARISONS if c[2] == "median_s" and groups.get((c[0], alt_label, c[1]))]
    for (name, nv, nm, impl, rv, rm, target, what), nimpl in cases:
        nab = groups.get((name, nimpl, nv), [])
        ref = groups.get((name, impl, rv), [])
        row = {"name": name, "what": what, "nabla_impl": nimpl, "reference": impl, "nabla_variant": nv,
               "reference_variant": rv, "nabla_metric": nm, "reference_metric": rm, "target": target}
        stopped = dnf.get((name, impl, rv))
        if not ref and stopped and nab:
            # The reference did not finish its first call: its time is only bounded below.
            row["nabla_s"] = med([r.get(nm) for r in nab])
            row["reference_s"] = None
            row["reference_note"] = stopped["reason"]
            if rm == "first_s":
                row["reference_lower_bound_s"] = stopped["first_s_lower_bound"]
                row["ratio_lower_bound"] = stopped["first_s_lower_bound"] / row["nabla_s"]
                row["ratio"] = None
                row["pass"] = None if target is None else row["ratio_lower_bound"] >= target
            else:
                row["ratio"] = None
                row["pass"] = None
            rows.append(row)
            continue
        if not ref:
            continue
        row["reference_s"] = med([r.get(rm) for r in ref])
        if not nab and nimpl != "nabla":
            continue
        if not nab:
            row["nabla_s"] = None
            row["ratio"] = None
            row["note"] = unavailable.get(name, "not measured")
            rows.append(row)
            continue
        row["nabla_s"] = med([r.get(nm) for r in nab])
        by_round = {r.get("round"): r for r in nab}
        paired = [ref_r.get(rm) / by_round[ref_r.get("round")][nm] for ref_r in ref
                  if ref_r.get("round") in by_round and ref_r.get(rm) and by_round[ref_r.get("round")].get(nm)]
        if len(paired) >= 2 or (paired and len(nab) == 1):
            row["ratio"] = med(paired)
            row["ratio_rounds"] = paired
        else:
            # A reference measured in one round only (JAX unrolled): against nabla's median over rounds.
            row["ratio"] = row["reference_s"] / row["nabla_s"]
            row["ratio_rounds"] = paired
        if nm == rm == "median_s":
            # Secondary figures, less sensitive to other processes on a shared machine: the fastest
            # repeat of each side over all rounds, and the ratio of process CPU times (per round).
            row["ratio_best"] = min(r["min_s"] for r in ref) / min(r["min_s"] for r in nab)
            cpu = [ref_r["cpu_median_s"] / by_round[ref_r.get("round")]["cpu_median_s"] for ref_r in ref
                   if ref_r.get("round") in by_round and ref_r.get("cpu_median_s")
                   and by_round[ref_r.get("round")].get("cpu_median_s")]
            row["ratio_cpu"] = med(cpu)
        row["pass"] = None if target is None else row["ratio"] >= target
        rows.append(row)
    return rows


# ----- report ------------------------------------------------------------------------------------


def fmt_s(s):
    if s is None:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r < 0.1:
        return f"{r:.2g}× (1/{1 / r:.0f})"
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def markdown(report):
    m = report["machine"]
    lines = [
        f"# nabla benchmarks: {report['date']}",
        "",
        f"Machine: {m['cpu']['model']} ({m['cpu'].get('vendor', '')} family {m['cpu'].get('family', '?')} "
        f"model {m['cpu'].get('model_number', '?')}), {m['cpu']['logical_cpus']} logical CPUs, "
        f"{m['cpu'].get('mhz', '?')} MHz nominal, hypervisor {m['cpu'].get('hypervisor', 'none')}; "
        f"load average before/after: {m['loadavg_before']} / {m['loadavg_after']}.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        f"Protocol: {report['config']['rounds']} interleaved rounds, processes pinned with `taskset -c "
        f"{report['config']['cpus']}`, {report['config']['threads']} threads each (PyTorch with OMP_WAIT_POLICY="
        f"{report['config']['pytorch_omp_wait_policy']}); times are medians over rounds "
        "of per-round medians; ratio = reference time / nabla time (median of per-round ratios), "
        "so **> 1 means nabla is faster**; pass/fail uses it. Best-of ratio: fastest repeat of each side over all "
        "rounds. CPU-time ratio: the same with process CPU time (all threads), which does not count time spent "
        "waiting for other processes; meaningful for the single-threaded workloads (scalar-chain, rk4-pendulum). "
        f"CPU idle before each process (median): {report['machine'].get('idle_before_median', 'n/a')}.",
        "",
        "| benchmark | comparison | nabla | reference | ratio (ref/nabla) | best-of ratio | CPU-time ratio | target | pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["comparisons"]:
        if c.get("reference_lower_bound_s") is not None:
            ref = f"> {fmt_s(c['reference_lower_bound_s'])} ({IMPL_NAMES[c['reference']]}: {c['reference_note']})"
            ratio = f"> {fmt_ratio(c['ratio_lower_bound'])}"
        elif c.get("reference_note"):
            ref = f"n/a ({IMPL_NAMES[c['reference']]}: {c['reference_note']})"
            ratio = "—"
        else:
            ref = f"{fmt_s(c['reference_s'])} ({IMPL_NAMES[c['reference']]})"
            ratio = fmt_ratio(c["ratio"])
        nab = fmt_s(c["nabla_s"]) if c["nabla_s"] is not None else f"n/a: {c.get('note', '')}"
        if c["nabla_metric"] == "first_s":
            nab += " (first call)"
        if c.get("nabla_impl", "nabla") != "nabla":
            nab += f" ({c['nabla_impl']})"
        target = "—" if c["target"] is None else f"≥ {c['target']:g}×"
        ok = "—" if c.get("pass") is None else ("PASS" if c["pass"] else "FAIL")
        best, cpu = fmt_ratio(c.get("ratio_best")), fmt_ratio(c.get("ratio_cpu"))
        lines.append(f"| {c['name']} | {c['what']} | {nab} | {ref} | {ratio} | {best} | {cpu} | {target} | {ok} |")
    mm = report.get("matmul", [])
    if mm:
        cpu = m["cpu"]
        lines += [
            "",
            f"Matmul throughput (peak = {cpu.get('peak_formula', '?')} = {cpu.get('peak_gflops', 0):.1f} GFLOP/s; "
            f"assumes {cpu['peak_assumption']}; the nominal clock is the one /proc/cpuinfo reports, "
            "boost clocks would raise the peak):",
            "",
            "| n | nabla GFLOP/s | PyTorch GFLOP/s | nabla / PyTorch | nabla % of peak | PyTorch % of peak |",
            "|---|---|---|---|---|---|",
        ]
        for r in mm:
            def g(x):
                return "n/a" if x is None else f"{x:.1f}"

            def pct(x):
                return "n/a" if x is None or not cpu.get("peak_gflops") else f"{100 * x / cpu['peak_gflops']:.0f}%"

            ratio = None if not (r["nabla"] and r["pytorch"]) else r["nabla"] / r["pytorch"]
            lines.append(f"| {r['n']} | {g(r['nabla'])} | {g(r['pytorch'])} | {fmt_ratio(ratio)} | "
                         f"{pct(r['nabla'])} | {pct(r['pytorch'])} |")
    checks = [s for s in report["summary"] if s["name"] == "rk4-pendulum" and "grad" in s]
    if checks:
        lines += ["", "rk4-pendulum check (expected loss ≈ 3.18, gradient ≈ (−39.25, −2.07, 20.33)):", ""]
        for s in checks:
            lines.append(f"- {IMPL_NAMES[s['impl']]} {s['variant']}: loss {s['loss']:.4f}, gradient "
                         f"({', '.join(f'{g:.3f}' for g in s['grad'])}): {s.get('check', '?')}")
    mem = [s for s in report["summary"] if s["name"] == "mlp-memory"]
    if mem:
        lines += ["", "mlp-memory (resident memory sampled every 100 steps):", ""]
        for s in mem:
            lines.append(f"- {IMPL_NAMES[s['impl']]}: {s.get('rss_at_100_mib', 0):.1f} MiB at step 100, "
                         f"largest growth after it {s.get('rss_max_growth_after_100_mib', 0):.2f} MiB: "
                         f"{'flat' if s.get('flat') else 'GROWS'}")
    if report["unavailable"]:
        lines += ["", "Not measured on the nabla side yet:", ""]
        for name, why in report["unavailable"].items():
            lines.append(f"- {name}: {why}")
    if report["failures"]:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description="Runs nabla and the reference frameworks side by side.")
    p.add_argument("names", nargs="*", help=f"benchmarks (default: all of {', '.join(ALL)})")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpus", default="0,1", help="taskset CPU list for every process ('' for none)")
    p.add_argument("--python", default=str(REF / ".venv" / "bin" / "python"))
    p.add_argument("--nabla", default=str(ROOT / "target" / "release" / "nabla-bench"))
    p.add_argument("--nabla-alt", default=None,
                   help="a second nabla-bench build (e.g. --features mimalloc) run in the same rounds")
    p.add_argument("--nabla-alt-label", default="nabla+mimalloc", help="its name in the report")
    p.add_argument("--data", default=None, help="MNIST directory (default: the reference scripts' default)")
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--jax-unrolled", choices=["once", "all", "never"], default="once",
                   help="run JAX's unrolled-loop variant (minutes of XLA compile) in round 1 only, every round, or never")
    p.add_argument("--unrolled-limit", type=int, default=300,
                   help="seconds allowed to JAX's unrolled variant before it is stopped (default 300)")
    p.add_argument("--unrolled-max-gib", type=float, default=6.0,
                   help="resident memory allowed to JAX's unrolled variant (default 6 GiB)")
    p.add_argument("--no-jax", action="store_true")
    p.add_argument("--omp-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY for the PyTorch processes (default PASSIVE: with the default spin-waiting, "
                        "PyTorch's 2 OpenMP threads collapse when other processes share the CPUs; '' leaves it unset)")
    p.add_argument("--wait-idle", type=float, default=0.0,
                   help="before each process, wait until this fraction of CPU time is idle (0 = do not wait)")
    p.add_argument("--wait-max", type=float, default=60.0, help="longest wait for --wait-idle, seconds")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    if args.data is None:
        sys.path.insert(0, str(REF))
        from common import default_mnist_dir

        args.data = default_mnist_dir()
    names = args.names or ALL
    unknown = [n for n in names if n not in ALL]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; known: {ALL}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "latest.log", "w")
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_info(args.threads), "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(args.python),
        "config": {"rounds": args.rounds, "threads": args.threads, "cpus": args.cpus,
                   "pytorch_omp_wait_policy": args.omp_wait_policy or "(unset)",
                   "jax_unrolled": args.jax_unrolled, "benchmarks": names},
        "records": [], "unavailable": {}, "failures": [],
    }
    idles = []
    for name in names:
        rounds = 1 if name in SINGLE_ROUND else args.rounds
        for rnd in range(1, rounds + 1):
            todo = jobs(args, name, rnd)
            if rnd % 2 == 0:
                todo.reverse()
            for impl, cmd, (timeout, max_rss, variant) in todo:
                print(f"[{name}] round {rnd}/{rounds}: {impl}{' ' + variant if variant else ''}",
                      file=sys.stderr, flush=True)
                idle = wait_for_idle(args)
                idles.append(idle)
                log.write(f"# CPU idle before: {idle}\n")
                env = {"OMP_WAIT_POLICY": args.omp_wait_policy} if impl == "pytorch" and args.omp_wait_policy else None
                records, rc, stopped, elapsed = run_json(cmd, log, timeout, max_rss, env)
                for r in records:
                    r["idle_before"] = idle
                    r["impl"] = impl
                if stopped and variant:
                    records.append({"name": name, "impl": impl, "variant": variant, "round": rnd,
                                    "status": "did-not-finish", "first_s_lower_bound": elapsed,
                                    "reason": stopped})
                elif stopped or rc != 0:
                    report["failures"].append(f"{name} {impl} round {rnd}: {stopped or f'exit status {rc}'}")
                for r in records:
                    if r.get("status") == "unavailable":
                        report["unavailable"][name] = r.get("reason", "")
                    if r.get("check") == "FAILED":
                        report["failures"].append(f"{name} {impl} {r.get('variant')}: numerical check failed")
                report["records"].extend(records)
    report["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    idle_known = [i for i in idles if i is not None]
    if idle_known:
        report["machine"]["idle_before_median"] = f"{100 * statistics.median(idle_known):.0f}%"
    groups, report["summary"] = aggregate(report["records"])
    report["comparisons"] = compare(groups, report["unavailable"], did_not_finish(report["records"]),
                                    args.nabla_alt_label if args.nabla_alt else None)
    sizes = [int(s) for s in args.sizes.split(",")] if "matmul" in names else []
    report["matmul"] = [
        {"n": n, **{impl: next((s.get("gflops") for s in report["summary"]
                                if s["name"] == "matmul" and s["impl"] == impl and s["variant"] == str(n)), None)
                    for impl in ("nabla", "pytorch")}}
        for n in sizes
    ]
    (out / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (out / "latest.md").write_text(md)
    print(md)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
