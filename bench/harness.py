#!/usr/bin/env python3
"""Side-by-side benchmark driver (called by bench/run.sh; standard library only).

For each workload of bench/workloads.py it runs `nabla-bench` and the reference scripts (PyTorch
eager, JAX), each side in a fresh process per round, in alternating order (odd rounds nabla first,
even rounds the references first), so the noise of a shared machine hits both sides. Every side gets
the same warm-up and repeat counts (from the table) and prints JSON lines with the median of its
repeats, its first call (a true first call of the process when `first_call_fresh`), and cross-check
figures computed from the shared inputs. Here:

  * a side's time is the median, over rounds, of its per-round medians;
  * a ratio is the median, over rounds, of (reference time / nabla time) within the same round,
    so ratio > 1 means nabla is faster;
  * the cross-check figures of every side are compared with nabla's (tolerance per workload);
    a mismatch is flagged in the table and makes the run fail;
  * everything, with the host (CPU, ISA extensions each side uses, cores), goes to
    bench/results/latest.json and a Markdown summary bench/results/latest.md.

Threads: every process runs under `taskset -c <cpus>` (default 0,1); nabla-bench gets `--threads 2`
(its rayon pool), the PyTorch script `torch.set_num_threads(2)` (everything else at PyTorch's
defaults), and XLA sizes its pools from the CPUs it may use (the affinity mask).
"""

import argparse
import datetime
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import host
import report
from workloads import ALL, WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "bench" / "reference"


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
    """Runs a command; returns (the JSON lines it printed, its exit status, why it was stopped or None,
    seconds). It is killed after `timeout` seconds or when its resident memory passes `max_rss` bytes."""
    log.write(f"$ {' '.join(f'{k}={v}' for k, v in (env or {}).items())} {shlex.join(cmd)}\n")
    log.flush()
    t = time.perf_counter()
    stopped = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}) as p:
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
                stopped = (f"stopped after {elapsed:.0f} s at {_rss(p.pid) / 2**30:.1f} GiB resident "
                           f"(limit {max_rss / 2**30:.1f} GiB)")
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


def counts(args, w):
    """The warm-up and repeat counts of a workload (the same for every side)."""
    warmup = args.warmup if args.warmup is not None else w.warmup
    repeats = args.repeats if args.repeats is not None else w.repeats
    if args.quick:
        warmup, repeats = min(warmup, 1), min(repeats, 3)
    return warmup, repeats


def side_commands(args):
    """impl -> the command that starts a side (without workload arguments)."""
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    cmds = {"nabla": pin + [str(args.nabla)],
            "pytorch": pin + [args.python, str(REF / "torch_bench.py")],
            "jax": pin + [args.python, str(REF / "jax_bench.py")]}
    if args.nabla_alt:
        cmds[args.nabla_alt_label] = pin + [args.nabla_alt]
    return cmds


def measure_peak(args, nabla_cmd, cpu):
    """The host's measured f32 peak (nabla-bench --peak: an FMA throughput probe) next to each
    matmul round, after the same wait for idle CPUs; the best of all probes is kept in `cpu`, with
    each round's speed of an L1-resident GEMM micro-kernel loop (the ceiling of a GEMM built on such a loop)."""
    wait_for_idle(args)
    try:
        p = subprocess.run(nabla_cmd + ["--peak", "--threads", str(args.threads)], capture_output=True,
                           text=True, timeout=120)
        line = json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        return
    got = line.get("measured_peak_gflops")
    if got:
        cpu["measured_peak_gflops"] = max(got, cpu.get("measured_peak_gflops") or 0.0)
    if line.get("kernel_loop_gflops"):
        cpu.setdefault("kernel_loop_gflops_rounds", []).append(line["kernel_loop_gflops"])


def jobs(args, w, rnd):
    """The processes of one round: (impl, command, (timeout, max_rss, variant that may be stopped))."""
    cmds = side_commands(args)
    warmup, repeats = counts(args, w)
    common = ["--threads", str(args.threads), "--round", str(rnd), "--warmup", str(warmup),
              "--repeats", str(repeats)]
    if w.name == "matmul":
        common += ["--sizes", args.sizes]
    if w.name == "graph-memory":
        common += ["--graph-steps", str(args.graph_steps)]
    if w.name in ("mlp-step", "cnn-step", "mlp-memory"):
        common += ["--data", args.data]
    plain = (args.timeout, None, None)
    # One nabla process per group of variants where the table asks for it (so that each group's
    # first call, e.g. nabla::compile's trace + replay, is the first workload call of its process).
    groups = [["--variants", ",".join(g)] for g in w.nabla_processes] or [[]]
    out = [("nabla", cmds["nabla"] + [w.name] + common + g, plain) for g in groups]
    if args.nabla_alt:
        out += [(args.nabla_alt_label, cmds[args.nabla_alt_label] + [w.name] + common + g, plain) for g in groups]
    if "pytorch" in w.sides:
        out.append(("pytorch", cmds["pytorch"] + [w.name] + common, plain))
    if "jax" in w.sides and not args.no_jax:
        jax = cmds["jax"] + [w.name] + common
        if not w.jax_loop_variants:
            out.append(("jax", jax, plain))
        else:
            out.append(("jax", jax + ["--variants", "fori"], plain))
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


SUMMARY_KEYS = ("loss", "grad", "check", "adam", "rss_max_growth_after_100_mib", "rss_at_100_mib", "flat",
                "ops", "bytes_per_op_graph", "bytes_per_op_peak", "rss_before_mib", "rss_graph_mib",
                "rss_peak_mib", "rss_after_drop_mib", "forward_s", "backward_s", "drop_s", "xcheck",
                "cost_in_gradients", "tape_len")


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
            "first_call_fresh": all(r.get("first_call_fresh") for r in rs),
            "min_s": min(r["min_s"] for r in rs),
            "cpu_median_s": med([r.get("cpu_median_s") for r in rs]),
            "warmup": rs[0].get("warmup"),
            "repeats_per_round": rs[0].get("repeats"),
        }
        if "gflops" in rs[0]:
            s["gflops"] = 2 * rs[0]["n"] ** 3 / s["median_s"] / 1e9
        if "adam" in rs[0]:
            s["adam_per_round"] = [r["adam"] for r in rs]
        for key in SUMMARY_KEYS:
            if key in rs[-1]:
                s[key] = rs[-1][key]
        summary.append(s)
    return groups, summary


def did_not_finish(records):
    return {(r["name"], r["impl"], r["variant"]): r for r in records if r.get("status") == "did-not-finish"}


def compare(groups, unavailable, dnf, alt_label=None):
    rows = []
    cases = [(w.name, c, "nabla") for w in WORKLOADS.values() for c in w.comparisons]
    if alt_label:
        # The alternative nabla build (e.g. with mimalloc) against the same references, after the others.
        cases += [(n, c, alt_label) for n, c, _ in list(cases)
                  if c.metric == "median_s" and groups.get((n, alt_label, c.nabla_variant))]
    for name, c, nimpl in cases:
        nm = rm = c.metric
        nab = groups.get((name, nimpl, c.nabla_variant), [])
        ref = groups.get((name, c.reference, c.reference_variant), [])
        if nm == "first_s":
            # Only true first calls (the first workload call of a fresh process) are compared.
            nab = [r for r in nab if r.get("first_call_fresh")]
            ref = [r for r in ref if r.get("first_call_fresh")]
        row = {"name": name, "what": c.what, "nabla_impl": nimpl, "reference": c.reference,
               "nabla_variant": c.nabla_variant, "reference_variant": c.reference_variant,
               "nabla_metric": nm, "reference_metric": rm, "target": c.target,
               "check_id": f"{name}/{c.nabla_variant}"}
        stopped = dnf.get((name, c.reference, c.reference_variant))
        if not ref and stopped and nab:
            # The reference did not finish its first call: its time is only bounded below.
            row["nabla_s"] = med([r.get(nm) for r in nab])
            row["reference_s"] = None
            row["reference_note"] = stopped["reason"]
            row["ratio"] = None
            row["pass"] = None
            if rm == "first_s":
                row["reference_lower_bound_s"] = stopped["first_s_lower_bound"]
                row["ratio_lower_bound"] = stopped["first_s_lower_bound"] / row["nabla_s"]
                row["pass"] = None if c.target is None else row["ratio_lower_bound"] >= c.target
            rows.append(row)
            continue
        if not ref:
            continue
        row["reference_s"] = med([r.get(rm) for r in ref])
        row["reference_adam"] = ref[-1].get("adam")
        if not nab:
            if nimpl != "nabla":
                continue
            row.update({"nabla_s": None, "ratio": None, "pass": None, "note": unavailable.get(name, "not measured")})
            rows.append(row)
            continue
        row["nabla_s"] = med([r.get(nm) for r in nab])
        by_round = {r.get("round"): r for r in nab}
        paired = [ref_r.get(rm) / by_round[ref_r.get("round")][nm] for ref_r in ref
                  if ref_r.get("round") in by_round and ref_r.get(rm) and by_round[ref_r.get("round")].get(nm)]
        if len(paired) >= 2 or (paired and len(nab) == 1):
            row["ratio"] = med(paired)
        else:
            # A reference measured in one round only (JAX unrolled): against nabla's median over rounds.
            row["ratio"] = row["reference_s"] / row["nabla_s"]
        row["ratio_rounds"] = paired
        if nm == "median_s":
            # Secondary figures, less sensitive to other processes on a shared machine: the fastest
            # repeat of each side over all rounds, and the ratio of process CPU times (per round).
            row["ratio_best"] = min(r["min_s"] for r in ref) / min(r["min_s"] for r in nab)
            cpu = [ref_r["cpu_median_s"] / by_round[ref_r.get("round")]["cpu_median_s"] for ref_r in ref
                   if ref_r.get("round") in by_round and ref_r.get("cpu_median_s")
                   and by_round[ref_r.get("round")].get("cpu_median_s")]
            row["ratio_cpu"] = med(cpu)
        row["pass"] = None if c.target is None else row["ratio"] >= c.target
        rows.append(row)
    return rows


def _close(key, a, b, ref, other, rtol, atol=1e-6):
    """Whether two cross-check figures agree; a `*_sum` is compared relative to its `*_abs`."""
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))) or not (math.isfinite(a) and math.isfinite(b)):
        return False
    scale = max(abs(a), abs(b))
    if key.endswith("_sum"):
        abs_key = key[:-4] + "_abs"
        scale = max(scale, abs(ref.get(abs_key, 0.0)), abs(other.get(abs_key, 0.0)))
    return abs(a - b) <= rtol * scale + atol


def cross_check(records):
    """Compares every side's cross-check figures with nabla's, per check id. Returns a list of
    {check_id, reference, side, ok, mismatches, values}."""
    by_id = {}
    for r in records:
        if r.get("status") == "ok" and r.get("xcheck") and r.get("check_id"):
            label = f"{r['impl']} {r['variant']}"
            by_id.setdefault(r["check_id"], {}).setdefault(label, r["xcheck"])
    out = []
    for cid, sides in by_id.items():
        w = WORKLOADS.get(cid.split("/")[0])
        rtol = w.rtol if w else 1e-4
        ref_label = next((label for label in sides if label.startswith("nabla ")), next(iter(sides)))
        ref = sides[ref_label]
        for label, xc in sides.items():
            if label == ref_label:
                continue
            bad = []
            for key in sorted(set(ref) | set(xc)):
                if key not in ref or key not in xc:
                    bad.append(f"{key} missing on {'nabla' if key not in ref else label}")
                elif not _close(key, ref[key], xc[key], ref, xc, rtol):
                    bad.append(f"{key}: {ref[key]:.7g} (nabla) vs {xc[key]:.7g}")
            out.append({"check_id": cid, "reference": ref_label, "side": label, "rtol": rtol,
                        "ok": not bad, "mismatches": bad, "values": {ref_label: ref, label: xc}})
    return out


# ----- main --------------------------------------------------------------------------------------


def parse_args():
    p = argparse.ArgumentParser(description="Runs nabla and the reference frameworks side by side.")
    p.add_argument("names", nargs="*", help=f"workloads (default: all of {', '.join(ALL)})")
    p.add_argument("--only", default=None, help="comma-separated workloads (same as naming them)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="a quick check that everything runs: 1 round, warm-up ≤ 1, repeats ≤ 3, no JAX unrolled "
                        "(figures are not measurements)")
    p.add_argument("--warmup", type=int, default=None, help="override every workload's warm-up count")
    p.add_argument("--repeats", type=int, default=None, help="override every workload's repeat count")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpus", default="0,1", help="taskset CPU list for every process ('' for none)")
    p.add_argument("--python", default=str(REF / ".venv" / "bin" / "python"))
    p.add_argument("--nabla", default=str(ROOT / "target" / "release" / "nabla-bench"))
    p.add_argument("--nabla-alt", default=None,
                   help="a second nabla-bench build (e.g. --features mimalloc) run in the same rounds")
    p.add_argument("--nabla-alt-label", default="nabla+mimalloc", help="its name in the report")
    p.add_argument("--data", default=None, help="MNIST directory (default: the reference scripts' default)")
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--graph-steps", type=int, default=500_000,
                   help="graph-memory: scalar-chain steps (2 recorded ops each; default 500,000 = 1M ops)")
    p.add_argument("--jax-unrolled", choices=["once", "all", "never"], default="once",
                   help="run JAX's unrolled-loop variant (minutes of XLA compile) in round 1 only, every round, or never")
    p.add_argument("--unrolled-limit", type=int, default=300,
                   help="seconds allowed to JAX's unrolled variant before it is stopped (default 300)")
    p.add_argument("--unrolled-max-gib", type=float, default=6.0,
                   help="resident memory allowed to JAX's unrolled variant (default 6 GiB)")
    p.add_argument("--no-jax", action="store_true")
    p.add_argument("--omp-wait-policy", default="",
                   help="OMP_WAIT_POLICY for the PyTorch processes (default: unset, PyTorch's default). Setting it "
                        "(e.g. PASSIVE) is not PyTorch's default; the report labels every figure with it")
    p.add_argument("--wait-idle", type=float, default=0.0,
                   help="before each process, wait until this fraction of CPU time is idle (0 = do not wait)")
    p.add_argument("--wait-max", type=float, default=60.0, help="longest wait for --wait-idle, seconds")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    if args.only:
        args.names += [n for n in args.only.split(",") if n]
    if args.quick:
        args.rounds, args.jax_unrolled = 1, "never"
    if args.data is None:
        sys.path.insert(0, str(REF))
        from common import default_mnist_dir

        args.data = default_mnist_dir()
    unknown = [n for n in args.names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; known: {ALL}")
    return args


def main():
    args = parse_args()
    names = args.names or ALL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "latest.log", "w")
    omp_env = {"OMP_WAIT_POLICY": args.omp_wait_policy} if args.omp_wait_policy else {}
    cmds = side_commands(args)
    sides = {impl: host.side_info(cmd + ["--threads", str(args.threads)], omp_env if impl == "pytorch" else None)
             for impl, cmd in cmds.items() if impl != "jax" or not args.no_jax}
    rep = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu": host.cpu_info(args.threads), "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "host_sides": sides,
        "versions": host.versions(args.python),
        "config": {"rounds": args.rounds, "quick": args.quick, "threads": args.threads, "cpus": args.cpus,
                   "pytorch_omp_wait_policy": args.omp_wait_policy or None,
                   "jax_unrolled": args.jax_unrolled, "benchmarks": names,
                   "counts": {n: dict(zip(("warmup", "repeats"), counts(args, WORKLOADS[n]))) for n in names}},
        "records": [], "unavailable": {}, "failures": [],
    }
    idles = []
    for name in names:
        w = WORKLOADS[name]
        rounds = 1 if w.single_round else args.rounds
        for rnd in range(1, rounds + 1):
            if name == "matmul":
                measure_peak(args, cmds["nabla"], rep["machine"]["cpu"])
            todo = jobs(args, w, rnd)
            if rnd % 2 == 0:
                todo.reverse()
            for impl, cmd, (timeout, max_rss, variant) in todo:
                print(f"[{name}] round {rnd}/{rounds}: {impl}{' ' + variant if variant else ''}",
                      file=sys.stderr, flush=True)
                idle = wait_for_idle(args)
                idles.append(idle)
                log.write(f"# CPU idle before: {idle}\n")
                records, rc, stopped, elapsed = run_json(cmd, log, timeout, max_rss,
                                                         omp_env if impl == "pytorch" else None)
                for r in records:
                    r["idle_before"] = idle
                    r["impl"] = impl
                if stopped and variant:
                    records.append({"name": name, "impl": impl, "variant": variant, "round": rnd,
                                    "status": "did-not-finish", "first_s_lower_bound": elapsed,
                                    "reason": stopped})
                elif stopped or rc != 0:
                    rep["failures"].append(f"{name} {impl} round {rnd}: {stopped or f'exit status {rc}'}")
                for r in records:
                    if r.get("status") == "unavailable":
                        rep["unavailable"][f"{name} ({impl})"] = r.get("reason", "")
                    if r.get("check") == "FAILED":
                        rep["failures"].append(f"{name} {impl} {r.get('variant')}: numerical check failed")
                rep["records"].extend(records)
    rep["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    idle_known = [i for i in idles if i is not None]
    if idle_known:
        rep["machine"]["idle_before_median"] = f"{100 * statistics.median(idle_known):.0f}%"
    groups, rep["summary"] = aggregate(rep["records"])
    rep["comparisons"] = compare(groups, rep["unavailable"], did_not_finish(rep["records"]),
                                 args.nabla_alt_label if args.nabla_alt else None)
    rep["cross_checks"] = cross_check(rep["records"])
    for c in rep["cross_checks"]:
        if not c["ok"]:
            rep["failures"].append(f"cross-check {c['check_id']}: {c['side']} differs from {c['reference']}: "
                                   + "; ".join(c["mismatches"]))
    sizes = [int(s) for s in args.sizes.split(",")] if "matmul" in names else []
    rep["matmul"] = [
        {"n": n, **{impl: next((s.get("gflops") for s in rep["summary"]
                                if s["name"] == "matmul" and s["impl"] == impl and s["variant"] == str(n)), None)
                    for impl in ("nabla", "pytorch")}}
        for n in sizes
    ]
    (out / "latest.json").write_text(json.dumps(rep, indent=1) + "\n")
    md = report.markdown(rep)
    (out / "latest.md").write_text(md)
    print(md)
    return 1 if rep["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
