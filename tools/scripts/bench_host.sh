#!/usr/bin/env bash
# Host inference speed, measured in one run: fixnet (`fixnet eval` / `fixnet run`, the host
# tool's own timing of the inference loop, inputs already decoded) on one thread and on every
# core, with the AVX2 kernels and with the portable ones (FIXNET_HOST_SIMD=off), against
# LiteRT's default interpreter (XNNPACK) on one thread from Python — skipped when TensorFlow
# is not installed. Models: the seed CNN on the 2,000 MNIST test digits, keyword spotting and
# visual wake words (tests/fixtures/mlperf, their 200 committed inputs). Each figure is the
# best of REPEAT runs (default 5): the machine may be shared, and the best run is the one
# least disturbed. Writes its section of docs/benchmarks-host.md (between the
# `<!-- bench_host: start -->` and `<!-- bench_host: end -->` lines, added before the first
# `## ` heading after the introduction when missing; OUT=path for another page) and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeat=${REPEAT:-5}
out=${OUT:-docs/benchmarks-host.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build -q --release -p fixnet-tools
fixnet=target/release/fixnet
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
cores=$(nproc)

"$fixnet" convert tests/fixtures/mlperf/kws_ref_model.tflite -o "$work/kws.fxn" >/dev/null
"$fixnet" convert tests/fixtures/mlperf/vww_96_int8.tflite -o "$work/vww.fxn" >/dev/null

# name | fixnet model | tflite | inputs (IDX images or .npy) | labels (IDX, for eval) or -
models=(
  "seed CNN (MNIST)|models/seed_cnn.fxn|tests/fixtures/models/seed_cnn_int8.tflite|data/mnist/test-images-idx3-ubyte.gz|data/mnist/test-labels-idx1-ubyte.gz"
  "keyword spotting DS-CNN|$work/kws.fxn|tests/fixtures/mlperf/kws_ref_model.tflite|tests/fixtures/mlperf/kws_ref_model_inputs.npy|-"
  "visual wake words MobileNetV1|$work/vww.fxn|tests/fixtures/mlperf/vww_96_int8.tflite|tests/fixtures/mlperf/vww_96_int8_inputs.npy|-"
)

# Images per second of one fixnet run: eval's JSON for IDX digits, run's report for .npy.
rate() {
  local threads=$1 model=$2 inputs=$3 labels=$4
  if [ "$labels" != - ]; then
    "$fixnet" --threads "$threads" eval --model "$model" --images "$inputs" --labels "$labels" --json |
      sed -n 's/.*"images_per_second":\([0-9.e+]*\).*/\1/p'
  else
    "$fixnet" --threads "$threads" run --model "$model" --inputs "$inputs" --out "$work/out.npy" |
      sed -n 's/.*(\([0-9.]*\) inputs\/s.*/\1/p'
  fi
}

best() {
  local b=0 r
  for _ in $(seq "$repeat"); do
    r=$("$@")
    b=$(awk -v a="$b" -v c="$r" 'BEGIN { print (a + 0 > c + 0) ? a : c }')
  done
  echo "$b"
}

litert_ok=false
if python3 -c "import tensorflow" >/dev/null 2>&1; then litert_ok=true; fi

rows=()
for m in "${models[@]}"; do
  IFS='|' read -r name model tflite inputs labels <<<"$m"
  one=$(best rate 1 "$model" "$inputs" "$labels")
  all=$(best rate "$cores" "$model" "$inputs" "$labels")
  portable=$(FIXNET_HOST_SIMD=off best rate 1 "$model" "$inputs" "$labels")
  lite=-
  if $litert_ok; then
    lite=$(REPEAT=$repeat python3 - "$tflite" "$inputs" 2>/dev/null <<'PY'
import gzip, os, sys, time
import numpy as np
import tensorflow as tf
tflite, inputs = sys.argv[1], sys.argv[2]
if inputs.endswith(".npy"):
    x = np.load(inputs)
    x = x.reshape((x.shape[0], 1) + x.shape[1:])
else:
    raw = gzip.open(inputs).read()
    x = (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28, 1).astype(np.int16) - 128).astype(np.int8)
it = tf.lite.Interpreter(model_path=tflite, num_threads=1)  # default resolver: XNNPACK
it.allocate_tensors()
i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
best = 0.0
for _ in range(int(os.environ["REPEAT"])):
    t = time.perf_counter()
    for v in x:
        it.set_tensor(i, v); it.invoke(); it.get_tensor(o)
    best = max(best, len(x) / (time.perf_counter() - t))
print(best)
PY
    ) || lite=-
  fi
  rows+=("$name|$one|$all|$portable|$lite")
  echo "$name: fixnet 1 thread $one/s, $cores threads $all/s, portable $portable/s, LiteRT XNNPACK $lite/s" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
tf_version=$($litert_ok && python3 -c "import tensorflow as tf; print(tf.__version__)" 2>/dev/null || echo "not installed")

section="$work/section.md"
{
  echo "<!-- bench_host: start -->"
  echo "## Every engine, every core: \`bash tools/scripts/bench_host.sh\`"
  echo
  echo "Measured by \`bash tools/scripts/bench_host.sh\` on $(date -u +%Y-%m-%d), commit"
  echo "$(git rev-parse --short HEAD): images (inputs) per second of inference, inputs already decoded,"
  echo "best of $repeat runs each. fixnet: \`fixnet eval\` (seed CNN, 2,000 MNIST test digits) or"
  echo "\`fixnet run\` (200 committed inputs), \`--threads 1\` and \`--threads $cores\`; *portable* is"
  echo "the same with \`FIXNET_HOST_SIMD=off\` (no AVX2 kernels). LiteRT: TensorFlow $tf_version,"
  echo "\`tf.lite.Interpreter(num_threads=1)\` with its default kernels (XNNPACK, not bit-exact"
  echo "with the reference kernels, which fixnet is), set_tensor + invoke + get_tensor per input."
  echo
  if [ -n "${CARGO_PROFILE_RELEASE_LTO:-}" ]; then
    echo "Built with \`CARGO_PROFILE_RELEASE_LTO=$CARGO_PROFILE_RELEASE_LTO\`."
    echo
  fi
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $cores cores,"
  echo "load average $load_before before and $load_after after (a shared machine: with other"
  echo "work running, both engines lose, and the all-core figure most)."
  echo
  echo "| model | fixnet 1 thread | fixnet $cores threads | speed-up | fixnet portable, 1 thread | LiteRT XNNPACK 1 thread | fixnet 1 thread / LiteRT |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do
    IFS='|' read -r name one all portable lite <<<"$r"
    awk -v name="$name" -v one="$one" -v all="$all" -v portable="$portable" -v lite="$lite" 'BEGIN {
      if (lite == "-") { l = "—"; ratio = "—" } else { l = sprintf("%.0f", lite); ratio = sprintf("%.2f×", one / lite) }
      printf "| %s | %.0f | %.0f | %.2f× | %.0f | %s | %s |\n", name, one, all, all / one, portable, l, ratio
    }'
  done
  echo "<!-- bench_host: end -->"
} >"$section"

# Replace the section in place, or insert it before the first second-level heading.
[ -f "$out" ] || printf '# Host benchmarks (x86-64)\n\n' >"$out"
awk -v section="$section" '
  function emit() { while ((getline line < section) > 0) print line; close(section); done = 1 }
  /^<!-- bench_host: start -->/ { skipping = 1; emit(); next }
  /^<!-- bench_host: end -->/ { skipping = 0; next }
  skipping { next }
  /^## / && !done && !seen_marker { emit(); print "" }
  { print }
  END { if (!done) { print ""; emit() } }
' seen_marker="$(grep -c '^<!-- bench_host: start -->' "$out" || true)" "$out" >"$work/page.md"
mv "$work/page.md" "$out"
cat "$section"
