#!/usr/bin/env python3
"""Train the fixnet test models on data/mnist and write tests/fixtures/**.

Run by hand (not in CI):

    pip install -r tools/scripts/requirements.txt
    python3 tools/scripts/make_fixtures.py               # everything
    python3 tools/scripts/make_fixtures.py --speed-only  # only re-measure litert_speed

Models (Keras 3, inputs float32 u8/255.0 of shape (N,28,28,1)):
  seed_cnn    Conv2D(32,3,relu) MaxPool2 Conv2D(64,3,relu) MaxPool2 Flatten
              Dense(128,relu) Dense(10,softmax); 8 epochs, batch 64
  mlp         Flatten Dense(128,relu) Dense(64,relu) Dense(10,softmax); 10 epochs
  strided_cnn Conv2D(16,3,s2,same,relu) DepthwiseConv2D(3,same,relu6)
              AvgPool2 Conv2D(32,3,same,relu) MaxPool2 Flatten Dense(10,softmax);
              10 epochs
  microbit_cnn Conv2D(8,3,s2,relu) Conv2D(16,3,s2,relu) Flatten Dense(32,relu)
              Dense(10,softmax); 15 epochs (python3 tools/scripts/make_fixtures.py
              --models microbit_cnn; shipped as models/microbit_cnn.fxn)
All: adam, sparse_categorical_crossentropy, keras.utils.set_random_seed(1234)
before each model is built, op determinism on.

Per model, tests/fixtures/models/: NAME.keras, NAME.h5 (both without compile /
optimizer state), NAME_float.tflite, NAME_int8.tflite (full-integer int8,
Optimize.DEFAULT, representative data = first 200 train digits,
TFLITE_BUILTINS_INT8, int8 input and output).
tests/fixtures/litert/NAME_int8_ref.npy: int8 (2000,10) outputs of LiteRT with
BUILTIN_REF kernels for the test digits in IDX order, input int8(u8-128);
NAME_int8_default.npy: the same with the default resolver (XNNPACK).
tests/fixtures/fixtures.json: metadata (accuracies, quantization, op lists...).
"""
import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np
import tensorflow as tf
import keras
from keras import layers
from tensorflow.lite.python import schema_py_generated as schema

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "data", "mnist")
FIX = os.path.join(ROOT, "tests", "fixtures")
MODELS = os.path.join(FIX, "models")
LITERT = os.path.join(FIX, "litert")
FIXTURES_JSON = os.path.join(FIX, "fixtures.json")
SEED = 1234
N_REPR = 200
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
               "FULLY_CONNECTED", "SOFTMAX", "RESHAPE",
               "SHAPE", "STRIDED_SLICE", "PACK"}  # last three: Flatten's shape chain
SPEED_CMD = "python3 tools/scripts/make_fixtures.py --speed-only"


# ----------------------------------------------------------------------------- data
def read_idx(name):
    raw = gzip.open(os.path.join(DATA, name), "rb").read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, hex(magic)  # u8 data
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_mnist():
    xtr = read_idx("train-images-idx3-ubyte.gz")
    ytr = read_idx("train-labels-idx1-ubyte.gz")
    xte = read_idx("test-images-idx3-ubyte.gz")
    yte = read_idx("test-labels-idx1-ubyte.gz")
    assert xtr.shape == (8000, 28, 28) and xte.shape == (2000, 28, 28)
    return xtr, ytr, xte, yte


def to_float(u8):
    return (u8.astype(np.float32) / np.float32(255.0)).reshape(-1, 28, 28, 1)


# ----------------------------------------------------------------------------- models
def build(name):
    inp = keras.Input(shape=(28, 28, 1))
    if name == "seed_cnn":
        ls = [layers.Conv2D(32, (3, 3), activation="relu"),
              layers.MaxPooling2D(2),
              layers.Conv2D(64, (3, 3), activation="relu"),
              layers.MaxPooling2D(2),
              layers.Flatten(),
              layers.Dense(128, activation="relu"),
              layers.Dense(10, activation="softmax")]
    elif name == "mlp":
        ls = [layers.Flatten(),
              layers.Dense(128, activation="relu"),
              layers.Dense(64, activation="relu"),
              layers.Dense(10, activation="softmax")]
    elif name == "strided_cnn":
        ls = [layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
              layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
              layers.AveragePooling2D(2),
              layers.Conv2D(32, 3, padding="same", activation="relu"),
              layers.MaxPooling2D(2),
              layers.Flatten(),
              layers.Dense(10, activation="softmax")]
    elif name == "microbit_cnn":
        # Sized for the BBC micro:bit (16 KB RAM, 256 KB flash): strided convolutions
        # instead of pools keep the largest activation pair at 2.1 KB.
        ls = [layers.Conv2D(8, 3, strides=2, activation="relu"),
              layers.Conv2D(16, 3, strides=2, activation="relu"),
              layers.Flatten(),
              layers.Dense(32, activation="relu"),
              layers.Dense(10, activation="softmax")]
    else:
        raise ValueError(name)
    return keras.Sequential([inp] + ls, name=name)


SPECS = {  # name: (epochs, batch)
    "seed_cnn": (8, 64),
    "mlp": (10, 64),
    "strided_cnn": (10, 64),
    "microbit_cnn": (15, 64),
}


# ----------------------------------------------------------------------------- tflite analysis
def _enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


OPNAMES = _enum_names(schema.BuiltinOperator)
TTYPES = _enum_names(schema.TensorType)
PADDING = _enum_names(schema.Padding)
ACT = _enum_names(schema.ActivationFunctionType)
FCW = _enum_names(schema.FullyConnectedOptionsWeightsFormat)


def _s(b):
    return b.decode() if isinstance(b, bytes) else b


def analyze_tflite(path):
    buf = open(path, "rb").read()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    assert len(m.subgraphs) == 1
    sg = m.subgraphs[0]

    def tinfo(i):
        if i < 0:
            return None
        t = sg.tensors[i]
        d = {"index": int(i), "name": _s(t.name), "dtype": TTYPES[t.type].lower(),
             "shape": [int(v) for v in (t.shape if t.shape is not None else [])]}
        if t.shapeSignature is not None and len(t.shapeSignature) > 0:
            d["shape_signature"] = [int(v) for v in t.shapeSignature]
        has_data = (t.buffer > 0 and m.buffers[t.buffer].data is not None
                    and len(m.buffers[t.buffer].data) > 0)
        d["constant"] = bool(has_data)
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            scales = [float(v) for v in q.scale]
            zps = [int(v) for v in q.zeroPoint]
            d["quant"] = {"per_channel": len(scales) > 1,
                          "quantized_dimension": int(q.quantizedDimension),
                          "num_scales": len(scales)}
            if len(scales) == 1:
                d["quant"].update(scale=scales[0], zero_point=zps[0])
            else:
                d["quant"].update(zero_points_all_zero=all(z == 0 for z in zps),
                                  scale_min=min(scales), scale_max=max(scales))
        return d

    ops = []
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = OPNAMES[code]
        o = {"op": name, "version": int(oc.version),
             "inputs": [tinfo(i) for i in op.inputs],
             "outputs": [tinfo(i) for i in op.outputs]}
        bo = op.builtinOptions
        opt = {}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opt = {"padding": PADDING[bo.padding], "stride_w": bo.strideW, "stride_h": bo.strideH,
                   "dilation_w": bo.dilationWFactor, "dilation_h": bo.dilationHFactor,
                   "fused_activation": ACT[bo.fusedActivationFunction]}
            if name == "DEPTHWISE_CONV_2D":
                opt["depth_multiplier"] = bo.depthMultiplier
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            opt = {"padding": PADDING[bo.padding], "stride_w": bo.strideW, "stride_h": bo.strideH,
                   "filter_w": bo.filterWidth, "filter_h": bo.filterHeight,
                   "fused_activation": ACT[bo.fusedActivationFunction]}
        elif name == "FULLY_CONNECTED":
            opt = {"fused_activation": ACT[bo.fusedActivationFunction],
                   "weights_format": FCW[bo.weightsFormat],
                   "keep_num_dims": bool(bo.keepNumDims),
                   "asymmetric_quantize_inputs": bool(bo.asymmetricQuantizeInputs)}
        elif name == "SOFTMAX":
            opt = {"beta": float(bo.beta)}
        elif name == "STRIDED_SLICE":
            opt = {"begin_mask": bo.beginMask, "end_mask": bo.endMask,
                   "shrink_axis_mask": bo.shrinkAxisMask}
        elif name == "PACK":
            opt = {"values_count": bo.valuesCount, "axis": bo.axis}
        o["options"] = opt
        ops.append(o)
    io = {"inputs": [tinfo(i) for i in sg.inputs], "outputs": [tinfo(i) for i in sg.outputs]}
    return ops, io


def op_summary(ops):
    """One line per op: name, dtypes, per-channel flags, key options."""
    out = []
    for o in ops:
        ins = ",".join(f"{t['dtype']}{'[pc]' if t.get('quant', {}).get('per_channel') else ''}"
                       f"{'(c)' if t['constant'] else ''}" if t else "none" for t in o["inputs"])
        outs = ",".join(t["dtype"] for t in o["outputs"])
        opt = " ".join(f"{k}={v}" for k, v in o["options"].items())
        out.append(f"{o['op']}({ins})->{outs} {opt}".strip())
    return out


# ----------------------------------------------------------------------------- litert
def make_interpreter(path, ref, threads=1):
    rt = (tf.lite.experimental.OpResolverType.BUILTIN_REF if ref
          else tf.lite.experimental.OpResolverType.AUTO)
    itp = tf.lite.Interpreter(model_path=path, num_threads=threads,
                              experimental_op_resolver_type=rt)
    itp.allocate_tensors()
    return itp


def check_input_quant(itp):
    d = itp.get_input_details()[0]
    scale, zp = d["quantization"]
    assert d["dtype"] == np.int8, d["dtype"]
    assert np.float32(scale) == np.float32(1.0 / 255.0) and zp == -128, (scale, zp)
    k = np.arange(256)
    x = k.astype(np.float64) / 255.0
    q = np.round(x / np.float64(scale)) + zp
    assert np.array_equal(q, k - 128), "round(x/scale)+zp != u8-128"
    return float(scale), int(zp)


def run_int8(path, x_i8, ref):
    itp = make_interpreter(path, ref)
    inp = itp.get_input_details()[0]
    out = itp.get_output_details()[0]
    assert out["dtype"] == np.int8
    res = np.empty((len(x_i8), 10), dtype=np.int8)
    for i in range(len(x_i8)):
        itp.set_tensor(inp["index"], x_i8[i:i + 1])
        itp.invoke()
        res[i] = itp.get_tensor(out["index"]).reshape(10)
    return res


def run_float(path, x_f):
    itp = make_interpreter(path, ref=False)
    inp = itp.get_input_details()[0]
    out = itp.get_output_details()[0]
    res = np.empty((len(x_f), 10), dtype=np.float32)
    for i in range(len(x_f)):
        itp.set_tensor(inp["index"], x_f[i:i + 1])
        itp.invoke()
        res[i] = itp.get_tensor(out["index"]).reshape(10)
    return res


def bench(path, x_i8, ref, runs=3):
    itp = make_interpreter(path, ref, threads=1)
    inp = itp.get_input_details()[0]["index"]
    out = itp.get_output_details()[0]["index"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(len(x_i8)):
            itp.set_tensor(inp, x_i8[i:i + 1])
            itp.invoke()
            itp.get_tensor(out)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"images_per_s": round(len(x_i8) / best, 1), "best_s": round(best, 4),
            "runs_s": [round(t, 4) for t in times]}


def measure_speed(x_i8):
    path = os.path.join(MODELS, "seed_cnn_int8.tflite")
    return {
        "model": "tests/fixtures/models/seed_cnn_int8.tflite",
        "images": int(len(x_i8)),
        "method": "tf.lite.Interpreter(num_threads=1), per image set_tensor+invoke+get_tensor, "
                  "batch 1, best of 3 full passes over the 2,000 test digits",
        "command": SPEED_CMD,
        "builtin_ref": bench(path, x_i8, ref=True),
        "default_xnnpack": bench(path, x_i8, ref=False),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- main
def rel(p):
    return os.path.relpath(p, ROOT)


def sha256(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def uncompiled_copy(model):
    # keras.models.clone_model compiles the clone in Keras 3.15 (optimizer state
    # would be saved); from_config gives an uncompiled model with the same names.
    c = keras.Sequential.from_config(model.get_config())
    c.set_weights(model.get_weights())
    assert getattr(c, "optimizer", None) is None
    return c


def normalize_keras_zip(path):
    """Make .keras byte-reproducible: fixed zip entry times and date_saved."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for fn, data in entries:
            if fn == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(meta).encode()
            z.writestr(zipfile.ZipInfo(fn, date_time=(1980, 1, 1, 0, 0, 0)), data)


def convert(model, xtr_f, int8):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def rep():
            for i in range(N_REPR):
                yield [xtr_f[i:i + 1]]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def do_model(name, data):
    xtr, ytr, xte, yte = data
    xtr_f, xte_f = to_float(xtr), to_float(xte)
    x_i8 = (xte.astype(np.int16) - 128).astype(np.int8).reshape(-1, 28, 28, 1)
    epochs, batch = SPECS[name]
    print(f"=== {name}", flush=True)
    keras.backend.clear_session()  # restart auto layer names (conv2d, dense, ...) per model
    keras.utils.set_random_seed(SEED)
    model = build(name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(xtr_f, ytr.astype(np.int64), epochs=epochs, batch_size=batch,
                     shuffle=True, verbose=2)
    probs = model.predict(xte_f, batch_size=256, verbose=0)
    keras_acc = float((probs.argmax(1) == yte).mean())
    print(f"{name}: keras test acc {keras_acc:.4f}", flush=True)

    paths = {k: os.path.join(MODELS, f"{name}{suf}") for k, suf in
             (("keras", ".keras"), ("h5", ".h5"), ("float", "_float.tflite"),
              ("int8", "_int8.tflite"))}
    plain = uncompiled_copy(model)
    plain.save(paths["keras"])
    normalize_keras_zip(paths["keras"])
    plain.save(paths["h5"])
    open(paths["float"], "wb").write(convert(model, xtr_f, int8=False))
    open(paths["int8"], "wb").write(convert(model, xtr_f, int8=True))

    fl = run_float(paths["float"], xte_f)
    float_acc = float((fl.argmax(1) == yte).mean())

    itp = make_interpreter(paths["int8"], ref=True)
    in_scale, in_zp = check_input_quant(itp)
    od = itp.get_output_details()[0]
    out_scale, out_zp = od["quantization"]
    ref = run_int8(paths["int8"], x_i8, ref=True)
    dflt = run_int8(paths["int8"], x_i8, ref=False)
    np.save(os.path.join(LITERT, f"{name}_int8_ref.npy"), ref)
    np.save(os.path.join(LITERT, f"{name}_int8_default.npy"), dflt)
    int8_acc = float((ref.argmax(1) == yte).mean())
    int8_default_acc = float((dflt.argmax(1) == yte).mean())
    diff = int((ref != dflt).sum())
    print(f"{name}: float tflite {float_acc:.4f}  int8 ref {int8_acc:.4f}  "
          f"default-vs-ref differing bytes {diff}", flush=True)

    ops, io = analyze_tflite(paths["int8"])
    fops, _ = analyze_tflite(paths["float"])
    bad = [o["op"] for o in ops if o["op"] not in ALLOWED_OPS]
    if bad:
        print(f"WARNING {name}: unexpected ops {bad}", file=sys.stderr)

    files = {}
    for k, p in paths.items():
        files[k] = {"path": rel(p), "bytes": os.path.getsize(p), "sha256": sha256(p)}
    for k in ("ref", "default"):
        p = os.path.join(LITERT, f"{name}_int8_{k}.npy")
        files[f"litert_{k}"] = {"path": rel(p), "bytes": os.path.getsize(p), "sha256": sha256(p)}
    return {
        "params": int(model.count_params()),
        "epochs": epochs, "batch_size": batch,
        "train_history": {k: [round(float(v), 6) for v in vs] for k, vs in hist.history.items()},
        "accuracy": {"keras_float": keras_acc, "tflite_float": float_acc,
                     "tflite_int8_builtin_ref": int8_acc,
                     "tflite_int8_default": int8_default_acc},
        "int8_input_quant": {"scale": in_scale, "zero_point": in_zp, "dtype": "int8",
                             "feed": "int8(u8 - 128)"},
        "int8_output_quant": {"scale": float(out_scale), "zero_point": int(out_zp), "dtype": "int8"},
        "int8_ops": [o["op"] for o in ops],
        "int8_ops_summary": op_summary(ops),
        "int8_ops_detail": ops,
        "int8_io": io,
        "float_ops": [o["op"] for o in fops],
        "default_vs_ref_differing_bytes": diff,
        "default_vs_ref_differing_rows": int((ref != dflt).any(1).sum()),
        "default_vs_ref_max_abs_diff": int(np.abs(ref.astype(np.int16) - dflt).max()),
        "files": files,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed-only", action="store_true",
                    help="only re-measure litert_speed in fixtures.json")
    ap.add_argument("--models", nargs="*", default=list(SPECS))
    args = ap.parse_args()
    data = load_mnist()
    x_i8 = (data[2].astype(np.int16) - 128).astype(np.int8).reshape(-1, 28, 28, 1)
    if args.speed_only:
        meta = json.load(open(FIXTURES_JSON))
        meta["litert_speed"] = measure_speed(x_i8)
        json.dump(meta, open(FIXTURES_JSON, "w"), indent=1)
        print(json.dumps(meta["litert_speed"], indent=1))
        return

    tf.config.experimental.enable_op_determinism()
    os.makedirs(MODELS, exist_ok=True)
    os.makedirs(LITERT, exist_ok=True)
    meta = {}
    if os.path.exists(FIXTURES_JSON):
        meta = json.load(open(FIXTURES_JSON))
    meta["generator"] = "python3 tools/scripts/make_fixtures.py"
    meta["versions"] = {"python": platform.python_version(), "tensorflow": tf.__version__,
                        "keras": keras.__version__, "numpy": np.__version__}
    meta["data"] = {"train": "data/mnist/train-*-idx*-ubyte.gz (8000)",
                    "test": "data/mnist/test-*-idx*-ubyte.gz (2000)",
                    "test_labels_sha256": sha256(os.path.join(DATA, "test-labels-idx1-ubyte.gz")),
                    "keras_input": "float32 u8/255.0, shape (N,28,28,1)",
                    "representative_dataset": f"first {N_REPR} train digits, float32 (1,28,28,1)"}
    meta["seed"] = SEED
    meta.setdefault("models", {})
    for name in args.models:
        meta["models"][name] = do_model(name, data)
        json.dump(meta, open(FIXTURES_JSON, "w"), indent=1)
    if "seed_cnn" in args.models:
        meta["litert_speed"] = measure_speed(x_i8)
        json.dump(meta, open(FIXTURES_JSON, "w"), indent=1)
    for name, m in meta["models"].items():
        print(name, m["params"], m["accuracy"], m["int8_ops"])
    if "litert_speed" in meta:
        print("speed", meta["litert_speed"]["builtin_ref"]["images_per_s"],
              meta["litert_speed"]["default_xnnpack"]["images_per_s"])


if __name__ == "__main__":
    main()
