#!/usr/bin/env bash
# Host inference speed of fixnet against LiteRT's Python interpreter, in one run, on one core
# (both pinned to CPU 0), on the 2,000 test digits with the seed CNN. Needs TensorFlow from pip
# (tools/scripts/requirements.txt). Prints images per second, best of 3 passes each.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p fixnet-tools
best=0
for _ in 1 2 3; do
  rate=$(taskset -c 0 target/release/fixnet eval --model models/seed_cnn.fxn \
      --images data/mnist/test-images-idx3-ubyte.gz --labels data/mnist/test-labels-idx1-ubyte.gz \
      --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
  best=$(python3 -c "print(max($best, $rate))")
done
printf "fixnet (host, release, one core): %.0f images/s\n" "$best"
taskset -c 0 python3 - <<'PY'
import gzip, time, numpy as np, tensorflow as tf
raw = gzip.open("data/mnist/test-images-idx3-ubyte.gz").read()
x = (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28, 1).astype(np.int16) - 128).astype(np.int8)
for name, kind in [("LiteRT BUILTIN_REF", tf.lite.experimental.OpResolverType.BUILTIN_REF),
                   ("LiteRT default (XNNPACK)", tf.lite.experimental.OpResolverType.AUTO)]:
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
    print(f"{name} (Python, one thread): {best:.0f} images/s")
PY
