#!/usr/bin/env bash
# Host inference speed of fixnet against LiteRT's Python interpreter, measured in one run, on
# one core (everything pinned to CPU 0), with the seed CNN on the MNIST test digits.
#
# fixnet: the criterion bench `cargo bench --bench inference -- seed_cnn/inference` (one
# image per iteration: quantize the digit, run every op, take the top class; criterion's
# estimate of the time per image). LiteRT: `tf.lite.Interpreter` from Python with its
# reference kernels (BUILTIN_REF, the kernels fixnet is bit-exact with) and its default
# optimized ones (XNNPACK), one thread, set_tensor + invoke + get_tensor per digit over the
# 2,000 test digits, best of 3 passes.
#
# Needs TensorFlow from pip (tools/scripts/requirements.txt). Prints a Markdown table of
# images per second. MEASURE=seconds sets criterion's measurement time (default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
measure=${MEASURE:-10}

# Build first, unpinned, so that compiling is not part of the measured session.
cargo bench -q -p fixnet --bench inference --no-run

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc: $(rustc --version)"

taskset -c 0 cargo bench -q -p fixnet --bench inference -- \
    --warm-up-time 3 --measurement-time "$measure" 'seed_cnn/inference$' >&2

FIXNET_ESTIMATES=target/criterion/seed_cnn/inference/new/estimates.json \
taskset -c 0 python3 - <<'PY'
import gzip, json, os, time
import numpy as np, tensorflow as tf

est = json.load(open(os.environ["FIXNET_ESTIMATES"]))
# Criterion's headline time per iteration (one image): the slope of its linear sampling
# when it has one, else the mean; nanoseconds.
ns = (est.get("slope") or est["mean"])["point_estimate"]
rates = [("fixnet (Rust, criterion, `Interpreter`)", 1e9 / ns)]

raw = gzip.open("data/mnist/test-images-idx3-ubyte.gz").read()
x = (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28, 1).astype(np.int16) - 128).astype(np.int8)
for name, kind in [("LiteRT BUILTIN_REF (Python)", tf.lite.experimental.OpResolverType.BUILTIN_REF),
                   ("LiteRT default, XNNPACK (Python)", tf.lite.experimental.OpResolverType.AUTO)]:
    it = tf.lite.Interpreter(model_path="tests/fixtures/models/seed_cnn_int8.tflite",
                             num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for img in x:
            it.set_tensor(i, img); it.invoke(); it.get_tensor(o)
        best = max(best, len(x) / (time.perf_counter() - t))
    rates.append((name, best))

print(f"TensorFlow {tf.__version__}, load after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
print()
print("| engine (one core) | images/s | µs / image | fixnet is |")
print("|---|---:|---:|---:|")
ours = rates[0][1]
for name, r in rates:
    ratio = "—" if r == ours else f"{ours / r:.1f}× faster" if ours >= r else f"{r / ours:.1f}× slower"
    print(f"| {name} | {r:,.0f} | {1e6 / r:,.1f} | {ratio} |")
PY
