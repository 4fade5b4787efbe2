"""The host record of a benchmark run: CPU model, cores, ISA extensions, and what each side uses."""

import json
import os
import platform
import subprocess
from pathlib import Path

ISA = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
       "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info(threads):
    info = {"model": platform.processor() or "unknown", "mhz": None, "flags": [], "logical_cpus": os.cpu_count()}
    cores = set()
    try:
        phys = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
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
            elif key == "physical id":
                phys = value
            elif key == "core id":
                cores.add((phys, value))
    except OSError:
        pass
    if cores:
        info["physical_cores"] = len(cores)
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Hypervisor vendor"):
                info["hypervisor"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags = set(info.pop("flags"))
    info["isa"] = [f for f in ISA if f in flags]
    if "avx512f" in flags:
        fpc, why = 64, "AVX-512 with 2 FMA units × 16 f32 lanes × 2 flop (1-FMA-unit parts: half)"
    elif {"avx2", "fma"} <= flags:
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
    return info


def versions(python):
    v = {"rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()}
    out = subprocess.run(
        [python, "-c", "import torch, jax, numpy, sys; print(torch.__version__, jax.__version__, "
                       "numpy.__version__, sys.version.split()[0])"],
        capture_output=True, text=True,
    ).stdout.split()
    if len(out) == 4:
        v.update(torch=out[0], jax=out[1], numpy=out[2], python=out[3])
    return v


def side_info(cmd, env=None):
    """The JSON line a side prints with --host (None, with the error, when it fails)."""
    try:
        p = subprocess.run(cmd + ["--host"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **(env or {})})
        for line in p.stdout.splitlines():
            if line.strip().startswith("{"):
                return json.loads(line)
        return {"error": (p.stderr.strip() or f"exit {p.returncode}")[-300:]}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        return {"error": str(e)}


def isa_used(side):
    """One line saying which ISA a side's kernels use."""
    if "error" in side:
        return f"unknown ({side['error']})"
    impl = side.get("impl")
    if impl == "nabla":
        k = side.get("kernels", {})
        return (f"detected {'/'.join(side.get('detected_features', [])) or 'none'}; "
                + "; ".join(f"{part}: {what}" for part, what in k.items())
                + f"; allocator {side.get('allocator')}")
    if impl == "pytorch":
        return (f"torch.backends.cpu.get_cpu_capability() = {side.get('cpu_capability')}, "
                f"MKL {side.get('mkl')}, oneDNN {side.get('mkldnn')}, {side.get('threads')} threads")
    if impl == "jax":
        return (f"jaxlib {side.get('jaxlib')} on {side.get('device')}; {side.get('xla_cpu_target')} "
                f"(here: {'/'.join(side.get('cpu_flags', [])) or 'n/a'}); XLA_FLAGS {side.get('xla_flags')}")
    return json.dumps(side)
