#!/usr/bin/env python3
"""Writes the small MNIST sample used by nabla's fast tests.

Takes the first N images and labels (default 1000) of the MNIST training and test sets and writes them
as gzipped IDX files with the standard names into an output folder. Only the Python standard library
is used; the output is byte-for-byte reproducible (gzip header without a timestamp or file name).

    python3 scripts/make_mnist_sample.py data/mnist data/mnist-sample --count 1000
"""

import argparse
import gzip
import hashlib
import io
import os
import struct
import sys

FILES = [
    ("train-images-idx3-ubyte.gz", 3),
    ("train-labels-idx1-ubyte.gz", 1),
    ("t10k-images-idx3-ubyte.gz", 3),
    ("t10k-labels-idx1-ubyte.gz", 1),
]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = list(struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim]))
    data = raw[4 + 4 * ndim :]
    expected = 1
    for d in dims:
        expected *= d
    if len(data) != expected:
        sys.exit(f"{path}: header says {dims} ({expected} bytes) but {len(data)} bytes follow")
    return dims, data


def write_idx_gz(path, dims, data):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    buf = io.BytesIO()
    # mtime=0 and no file name: the same input gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(header + data)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder with the four MNIST .gz files")
    ap.add_argument("dst", help="output folder")
    ap.add_argument("--count", type=int, default=1000, help="samples kept per split (default 1000)")
    args = ap.parse_args()
    os.makedirs(args.dst, exist_ok=True)
    for name, ndim in FILES:
        dims, data = read_idx(os.path.join(args.src, name))
        if len(dims) != ndim:
            sys.exit(f"{name}: expected {ndim} dimensions, found {len(dims)}")
        n = min(args.count, dims[0])
        row = len(data) // dims[0] if dims[0] else 0
        out = os.path.join(args.dst, name)
        write_idx_gz(out, [n] + dims[1:], data[: n * row])
        with open(out, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main()
