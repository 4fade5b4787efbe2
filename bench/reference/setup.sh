#!/usr/bin/env bash
# Installs the reference frameworks (PyTorch eager and JAX, CPU) into bench/reference/.venv.
# PyPI's `torch` wheel is the CUDA build (about 5 GB installed); it runs on the CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$here/requirements.txt"
"$venv/bin/python" -c "import torch, jax, numpy, safetensors; print('torch', torch.__version__, '| jax', jax.__version__, '| numpy', numpy.__version__)"
