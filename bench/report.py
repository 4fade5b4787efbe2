"""The Markdown summary of a harness run (bench/results/latest.md)."""

import statistics

from host import isa_used

IMPL_NAMES = {"nabla": "nabla", "nabla+mimalloc": "nabla+mimalloc", "pytorch": "PyTorch", "jax": "JAX"}


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


def _impl(name):
    return IMPL_NAMES.get(name, name)


def header(report):
    m, cfg = report["machine"], report["config"]
    cpu = m["cpu"]
    omp = cfg.get("pytorch_omp_wait_policy")
    torch_threads = ("PyTorch at its default thread settings (OMP_WAIT_POLICY unset)" if not omp else
                     f"**PyTorch with OMP_WAIT_POLICY={omp} (not PyTorch's default; every PyTorch figure below "
                     "is under this setting)**")
    lines = [
        f"# nabla benchmarks: {report['date']}" + (" (--quick: a check that everything runs, not a measurement)"
                                                     if cfg.get("quick") else ""),
        "",
        "## Host",
        "",
        f"- CPU: {cpu['model']} ({cpu.get('vendor', '')} family {cpu.get('family', '?')} model "
        f"{cpu.get('model_number', '?')}), {cpu['logical_cpus']} logical CPUs"
        f"{', ' + str(cpu['physical_cores']) + ' cores' if cpu.get('physical_cores') else ''}, "
        f"{cpu.get('mhz', '?')} MHz nominal, hypervisor {cpu.get('hypervisor', 'none')}; "
        f"ISA extensions: {', '.join(cpu.get('isa', [])) or 'n/a'}.",
        f"- Processes pinned to CPUs {cfg['cpus'] or '(not pinned)'}, {cfg['threads']} threads each; "
        f"load average before/after: {m['loadavg_before']} / {m.get('loadavg_after')}; "
        f"CPU idle before each process (median): {m.get('idle_before_median', 'n/a')}.",
    ]
    for impl, side in report.get("host_sides", {}).items():
        lines.append(f"- {_impl(impl)}: {isa_used(side)}.")
    lines += [
        f"- Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        "",
        "## Protocol",
        "",
        f"{cfg['rounds']} interleaved rounds, each side in a fresh process per round; {torch_threads}; "
        "warm-up/repeat counts, the same on every side: "
        + ", ".join(f"{n} {c['warmup']}/{c['repeats']}" for n, c in cfg.get("counts", {}).items()
                    if c["repeats"]) + ". "
        "Times are medians over rounds of per-round medians; ratio = reference time / nabla time (median of "
        "per-round ratios), so **> 1 means nabla is faster**; pass/fail uses it. Best-of ratio: fastest repeat "
        "of each side over all rounds. CPU-time ratio: the same with process CPU time (all threads), which does "
        "not count time spent waiting for other processes. First calls are compared only when both are the "
        "first workload call of a fresh process. Cross-check: every side's loss and gradient sums from the same "
        "inputs, compared with nabla's (see below).",
    ]
    return lines


def comparison_table(report):
    checks = {}
    for c in report.get("cross_checks", []):
        checks.setdefault((c["check_id"], c["side"].split(" ")[0]), []).append(c)
    lines = [
        "",
        "## Results",
        "",
        "| benchmark | comparison | nabla | reference | ratio (ref/nabla) | best-of ratio | CPU-time ratio | target "
        "| pass | cross-check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    omp = report["config"].get("pytorch_omp_wait_policy")
    for c in report["comparisons"]:
        ref_name = _impl(c["reference"]) + (f", OMP_WAIT_POLICY={omp}" if omp and c["reference"] == "pytorch" else "")
        if c.get("reference_adam"):
            ref_name += f", Adam {c['reference_adam'].split(' ')[0]}"
        if c.get("reference_lower_bound_s") is not None:
            ref = f"> {fmt_s(c['reference_lower_bound_s'])} ({ref_name}: {c['reference_note']})"
            ratio = f"> {fmt_ratio(c['ratio_lower_bound'])}"
        elif c.get("reference_note"):
            ref, ratio = f"n/a ({ref_name}: {c['reference_note']})", "—"
        else:
            ref, ratio = f"{fmt_s(c['reference_s'])} ({ref_name})", fmt_ratio(c["ratio"])
        nab = fmt_s(c["nabla_s"]) if c["nabla_s"] is not None else f"n/a: {c.get('note', '')}"
        if c["nabla_metric"] == "first_s":
            nab += " (first call)"
        if c.get("nabla_impl", "nabla") != "nabla":
            nab += f" ({c['nabla_impl']})"
        target = "—" if c["target"] is None else f"≥ {c['target']:g}×"
        ok = "—" if c.get("pass") is None else ("PASS" if c["pass"] else "FAIL")
        xs = checks.get((c["check_id"], c["reference"]), [])
        xc = "—" if not xs else ("ok" if all(x["ok"] for x in xs) else "**MISMATCH**")
        lines.append(f"| {c['name']} | {c['what']} | {nab} | {ref} | {ratio} | {fmt_ratio(c.get('ratio_best'))} "
                     f"| {fmt_ratio(c.get('ratio_cpu'))} | {target} | {ok} | {xc} |")
    return lines


def matmul_table(report):
    mm, cpu = report.get("matmul", []), report["machine"]["cpu"]
    if not mm:
        return []
    nominal, measured = cpu.get("peak_gflops"), cpu.get("measured_peak_gflops")
    peak = max(x for x in (nominal, measured, 0.0) if x is not None)
    lines = [
        "",
        f"Matmul throughput. Peak = {peak:.1f} GFLOP/s, the larger of the nominal peak "
        f"({cpu.get('peak_formula', '?')} = {nominal or 0:.1f} GFLOP/s; assumes {cpu['peak_assumption']}; "
        "/proc/cpuinfo's clock) and the peak measured next to each matmul round by an FMA throughput probe "
        f"on the same threads (`nabla-bench --peak`, boost clock included: "
        f"{'n/a' if measured is None else f'{measured:.1f}'} GFLOP/s):",
        "",
        "| n | nabla GFLOP/s | PyTorch GFLOP/s | nabla / PyTorch | nabla % of peak | PyTorch % of peak |",
        "|---|---|---|---|---|---|",
    ]

    def g(x):
        return "n/a" if x is None else f"{x:.1f}"

    def pct(x):
        return "n/a" if x is None or not peak else f"{100 * x / peak:.0f}%"

    for r in mm:
        ratio = None if not (r["nabla"] and r["pytorch"]) else r["nabla"] / r["pytorch"]
        lines.append(f"| {r['n']} | {g(r['nabla'])} | {g(r['pytorch'])} | {fmt_ratio(ratio)} | "
                     f"{pct(r['nabla'])} | {pct(r['pytorch'])} |")
    loop = sorted(cpu.get("kernel_loop_gflops_rounds") or [])
    if loop and peak:
        med = statistics.median(loop)
        lines += [
            "",
            f"The inner loop of a GEMM in these rounds: an AVX2 micro-kernel loop on L1-resident panels (6×16 "
            f"tile, two loads and six broadcasts per twelve FMAs, the mix of the AVX2 kernels of gemm, BLIS and "
            f"MKL; `nabla-bench --peak`, best of 5 runs next to each round) reached {med:.1f} GFLOP/s, {pct(med)} "
            f"of the peak (median over rounds; range {loop[0]:.1f}-{loop[-1]:.1f}). A matrix product runs such a "
            "loop plus packing and cache misses, so it stays below it; the FMA probe needs no loads, so the gap "
            "between the two is what the rest of the host's load leaves a GEMM's loads and dispatch.",
        ]
    return lines


def memory_sections(report):
    lines = []
    mem = [s for s in report["summary"] if s["name"] == "mlp-memory"]
    if mem:
        lines += ["", "mlp-memory (resident memory sampled every 100 steps):", ""]
        for s in mem:
            lines.append(f"- {_impl(s['impl'])}: {s.get('rss_at_100_mib', 0):.1f} MiB at step 100, "
                         f"largest growth after it {s.get('rss_max_growth_after_100_mib', 0):.2f} MiB: "
                         f"{'flat' if s.get('flat') else 'GROWS'}")
    gm = [s for s in report["summary"] if s["name"] == "graph-memory"]
    if gm:
        lines += ["", "graph-memory (scalar-chain with recording, fresh process; resident memory deltas over the "
                      "process before the forward pass):", "",
                  "| side | ops | bytes/op, graph alive | bytes/op, peak (backward) | RSS before / graph / peak / "
                  "after drop (MiB) | forward / backward / drop |", "|---|---|---|---|---|---|"]
        for s in gm:
            lines.append(
                f"| {_impl(s['impl'])} | {s.get('ops', 0):,} | {s.get('bytes_per_op_graph', 0):.0f} | "
                f"{s.get('bytes_per_op_peak', 0):.0f} | {s.get('rss_before_mib', 0):.0f} / "
                f"{s.get('rss_graph_mib', 0):.0f} / {s.get('rss_peak_mib', 0):.0f} / "
                f"{s.get('rss_after_drop_mib', 0):.0f} | {fmt_s(s.get('forward_s'))} / "
                f"{fmt_s(s.get('backward_s'))} / {fmt_s(s.get('drop_s'))} |")
    return lines


def cross_check_section(report):
    xs = report.get("cross_checks", [])
    if not xs:
        return []
    lines = ["", "## Cross-check (same inputs on every side; figures compared with nabla's)", "",
             "| check | side | result | nabla | side's figures |", "|---|---|---|---|---|"]

    def fig(d):
        return ", ".join(f"{k} {v:.6g}" for k, v in d.items())

    for c in xs:
        ok = f"ok (rtol {c['rtol']:g})" if c["ok"] else "**MISMATCH**: " + "; ".join(c["mismatches"])
        lines.append(f"| {c['check_id']} | {c['side']} | {ok} | {fig(c['values'][c['reference']])} | "
                     f"{fig(c['values'][c['side']])} |")
    return lines


def markdown(report):
    lines = header(report) + comparison_table(report) + matmul_table(report) + memory_sections(report)
    lines += cross_check_section(report)
    checks = [s for s in report["summary"] if s["name"] == "rk4-pendulum" and "grad" in s]
    if checks:
        lines += ["", "rk4-pendulum check (expected loss ≈ 3.18, gradient ≈ (−39.25, −2.07, 20.33)):", ""]
        for s in checks:
            lines.append(f"- {_impl(s['impl'])} {s['variant']}: loss {s['loss']:.4f}, gradient "
                         f"({', '.join(f'{g:.3f}' for g in s['grad'])}): {s.get('check', '?')}")
    hvps = [s for s in report["summary"] if s.get("cost_in_gradients") is not None]
    if hvps:
        lines += ["", "Hessian-vector products (median time, and as a multiple of one gradient of the same "
                      "path measured in the same process):", ""]
        for s in hvps:
            lines.append(f"- {s['name']} {_impl(s['impl'])} {s['variant']}: {fmt_s(s['median_s'])}, "
                         f"{s['cost_in_gradients']:.2f} gradients")
    if report["unavailable"]:
        lines += ["", "Not measured:", ""] + [f"- {n}: {why}" for n, why in report["unavailable"].items()]
    if report["failures"]:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"
