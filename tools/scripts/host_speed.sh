#!/usr/bin/env bash
# Host inference speed of fixnet against LiteRT's Python interpreter, measured in one run, on
# one core (everything pinned to CPU 0), with the seed CNN on the MNIST test digits.
#
# fixnet: the criterion bench `cargo bench --bench inference` (one image per iteration:
# quantize the digit, run every op, take the top class; criterion's estimate of the time per
# image; also one fine-tuning step). LiteRT: `tf.lite.Interpreter` from Python with its
# reference kernels (BUILTIN_REF, the kernels fixnet is bit-exact with) and its default
# optimized ones (XNNPACK), one thread, set_tensor + invoke + get_tensor per digit over the
# 2,000 test digits, best of 3 passes.
#
# Needs TensorFlow from pip (tools/scripts/requirements.txt). Prints a Markdown table of
# images per second. MEASURE=seconds sets criterion's measurement time (default 10).
#
# With --kernels, first also runs `cargo bench --bench kernels` (every kernel on the seed
# CNN's layers; KERNEL_MEASURE seconds each, default 2) and prints its table.
set -euo pipefail
cd "$(dirname "$0")/../.."
measure=${MEASURE:-10}
kernels=false
[ "${1:-}" = --kernels ] && kernels=true

# Build first, unpinned, so that compiling is not part of the measured session.
cargo bench -q -p fixnet --bench inference --bench kernels --no-run

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc: $(rustc --version)"

if $kernels; then
  stamp=$(mktemp)
  taskset -c 0 cargo bench -q -p fixnet --bench kernels -- \
      --warm-up-time 1 --measurement-time "${KERNEL_MEASURE:-2}" >&2
  python3 - "$stamp" <<'PY'
import json, os, sys
# Criterion's results of this run only (written after the stamp), in run order.
since = os.path.getmtime(sys.argv[1])
found = []
for root, _, files in os.walk("target/criterion"):
    if root.endswith("/new") and "estimates.json" in files:
        path = os.path.join(root, "estimates.json")
        if os.path.getmtime(path) > since:
            found.append((os.path.getmtime(path), root))
print("| layer | kernel | µs / call | MMAC/s |")
print("|---|---|---:|---:|")
for _, root in sorted(found):
    meta = json.load(open(os.path.join(root, "benchmark.json")))
    if meta["group_id"] == "seed_cnn":
        continue
    est = json.load(open(os.path.join(root, "estimates.json")))
    ns = (est.get("slope") or est["mean"])["point_estimate"]
    macs = (meta.get("throughput") or {}).get("Elements")
    rate = f"{macs / ns * 1e3:,.0f}" if macs else "—"
    print(f"| {meta['group_id']} | {meta['function_id']} | {ns / 1e3:,.2f} | {rate} |")
PY
  rm -f "$stamp"
  echo
fi

taskset -c 0 cargo bench -q -p fixnet --bench inference -- \
    --warm-up-time 3 --measurement-time "$measure" 'seed_cnn/' >&2

taskset -c 0 python3 - <<'PY'
import gzip, json, os, time
import numpy as np, tensorflow as tf

def criterion_ns(name):
    """Criterion's headline time per iteration (one image) in ns: the slope of its linear
    sampling when it has one, else the mean."""
    est = json.load(open(f"target/criterion/seed_cnn/{name}/new/estimates.json"))
    return (est.get("slope") or est["mean"])["point_estimate"]

rates = [("fixnet `Interpreter` (Rust, criterion)", 1e9 / criterion_ns("inference"))]
step_ns = criterion_ns("train_step")

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
print()
print(f"fixnet fine-tuning step (`Trainer::step`, default layers): {step_ns / 1e3:,.0f} µs "
      f"({1e9 / step_ns:,.0f} steps/s)")
PY
