#!/usr/bin/env python3
"""Prints what a nabla checkpoint holds: each tensor's name, dtype and shape, then the metadata.

A nabla checkpoint is a plain safetensors file: the model's tensors are named `model.<name>`, the
optimiser's state `optim.<name>`, and `__metadata__` holds the caller's metadata plus nabla's own
`nabla.*` keys (format, version, optimizer, step). This script reads it with `safetensors.numpy`
and, when PyTorch is installed (or with --torch), also with `safetensors.torch`, checking that both
agree.

    python scripts/inspect_checkpoint.py runs/x/model.safetensors
    bench/reference/.venv/bin/python scripts/inspect_checkpoint.py --torch ckpt.safetensors

Exit status: 0 when the file loads, 1 when it does not (the error is printed).
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="a .safetensors checkpoint written by nabla")
    ap.add_argument("--torch", action="store_true", help="require PyTorch and cross-check with safetensors.torch")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()

    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError as e:
        sys.exit(f"inspect_checkpoint: needs the `safetensors` and `numpy` packages ({e})")

    try:
        arrays = load_file(args.path)
        with safe_open(args.path, framework="numpy") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for a bad file
        print(f"inspect_checkpoint: {args.path}: {e}", file=sys.stderr)
        return 1

    torch_checked = False
    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file as load_torch

        tensors = load_torch(args.path)
        for name, a in arrays.items():
            t = tensors[name]
            if tuple(t.shape) != a.shape or not (t.numpy() == a).all():
                print(f"inspect_checkpoint: {name}: torch and numpy disagree", file=sys.stderr)
                return 1
        torch_checked = True
    except ImportError:
        if args.torch:
            sys.exit("inspect_checkpoint: --torch given but PyTorch is not installed")

    if args.json:
        out = {
            "tensors": {n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in sorted(arrays.items())},
            "metadata": metadata,
            "torch_checked": torch_checked,
        }
        print(json.dumps(out, sort_keys=True))
        return 0

    width = max((len(n) for n in arrays), default=4)
    print(f"{args.path}: {len(arrays)} tensors, {sum(a.size for a in arrays.values())} values")
    for name in sorted(arrays):
        a = arrays[name]
        print(f"  {name:<{width}}  {str(a.dtype):<8} {list(a.shape)}")
    print("metadata:")
    for k in sorted(metadata):
        print(f"  {k} = {metadata[k]}")
    print(f"torch: {'loaded, same values' if torch_checked else 'not installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
