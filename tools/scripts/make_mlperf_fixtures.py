#!/usr/bin/env python3
"""Make the test data of the MLPerf Tiny models in tests/fixtures/mlperf/.

Run by hand (not in CI), after `pip install -r tools/scripts/requirements.txt`:

    python3 tools/scripts/make_mlperf_fixtures.py             # ~3 min on 2 cores
    python3 tools/scripts/make_mlperf_fixtures.py --vww-floats  # also the 33 MB of VWW floats

For each shipped int8 model STEM.tflite:
  STEM_inputs.npy  int8 (200, *input dims): full-range uniform random int8 (default_rng(SEED_EVAL))
  STEM_ref.npy     int8 (200, outputs): LiteRT BUILTIN_REF outputs, one input at a time
For each float Keras model H5STEM.h5 (loaded with tf_keras: Keras 3 refuses vww_96.h5):
  H5STEM_calib.npy float32 (100, ...): dequantized random int8 (default_rng(SEED_CALIB)) in the
                   shipped int8 model's input quantization, for post-training calibration
  H5STEM_eval.npy  float32 (200, ...): the dequantized STEM_inputs.npy of the matching .tflite
  H5STEM_float.npy float32 (200, outputs): the float Keras outputs on H5STEM_eval.npy
  H5STEM_litert_int8.tflite: LiteRT's own full-int8 conversion of the .h5 (TFLiteConverter,
                   representative data = the 100 calibration inputs, int8 input and output)
  H5STEM_litert_int8_ref.npy int8 (200, outputs): its BUILTIN_REF outputs on STEM_inputs.npy
                   (its input quantization is the shipped one, checked)
For every int8 model M above, from the same runs (experimental_preserve_all_tensors):
  M_logits_ref.npy   int8 (200, classes): the input of the final SOFTMAX (not for AD01)
  M_features_ref.npy int8 (200, n): the input of the last FULLY_CONNECTED
vww_96_calib.npy and vww_96_eval.npy would be 11 MB and 22 MB of incompressible floats, so they
are written only with --vww-floats; both are exact functions of committed int8 files (see
README.md). errors.json: relative L2 errors of the int8 models against the float outputs.
fixtures.json: versions, seeds, quantization, ops, sizes and sha256 of every file.
"""
import argparse
import hashlib
import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np
import tensorflow as tf
import tf_keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import analyze_tflite  # noqa: E402  (same op listing as the MNIST fixtures)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIR = os.path.join(ROOT, "tests", "fixtures", "mlperf")
N_EVAL = 200
N_CALIB = 100
SEED_EVAL = 1234
SEED_CALIB = 5678
REF = tf.lite.experimental.OpResolverType.BUILTIN_REF
GENERATOR = "python3 tools/scripts/make_mlperf_fixtures.py"

# (shipped int8 model stem, float Keras model stem or None, task)
MODELS = [
    ("kws_ref_model", None, "keyword spotting, DS-CNN"),
    ("ad01_int8", "ad01", "anomaly detection, FC autoencoder"),
    ("pretrainedResnet_quant", "pretrainedResnet", "CIFAR-10 image classification, ResNet-8"),
    ("vww_96_int8", "vww_96", "visual wake words, MobileNetV1 0.25"),
]
# Floats too big to commit: exact functions of committed int8 files (README.md says how).
BIG_FLOATS = {"vww_96"}


def path(name):
    return os.path.join(DIR, name)


def rel(p):
    return os.path.relpath(p, ROOT)


def sha256(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def interpreter(model_path=None, content=None):
    itp = tf.lite.Interpreter(model_path=model_path, model_content=content, num_threads=1,
                              experimental_op_resolver_type=REF)
    itp.allocate_tensors()
    return itp


def io_quant(details):
    scale, zp = details["quantization"]
    return {"dtype": np.dtype(details["dtype"]).name, "shape": [int(d) for d in details["shape"]],
            "scale": float(scale), "zero_point": int(zp)}


def random_int8(seed, n, dims):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 127, size=(n, *dims), dtype=np.int8, endpoint=True)


def run_int8(itp, x_i8):
    """Runs each input alone (batch 1): LiteRT's kernels see exactly what fixnet's do."""
    inp = itp.get_input_details()[0]
    out = itp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8, (inp["dtype"], out["dtype"])
    n_out = int(np.prod(out["shape"][1:]))
    res = np.empty((len(x_i8), n_out), dtype=np.int8)
    for i in range(len(x_i8)):
        itp.set_tensor(inp["index"], x_i8[i:i + 1])
        itp.invoke()
        res[i] = itp.get_tensor(out["index"]).reshape(n_out)
    return res


def taps(model_path):
    """Intermediate tensors worth comparing too: on random inputs the classifiers' softmax
    saturates (VWW gives 7 distinct output rows in 200), so the SOFTMAX input ("logits") and
    the input of the last FULLY_CONNECTED ("features", after the global pooling) are sharper
    witnesses of exactness."""
    ops, io = analyze_tflite(model_path)
    out = {}
    last = ops[-1]
    if last["op"] == "SOFTMAX" and last["outputs"][0]["index"] == io["outputs"][0]["index"]:
        out["logits"] = last["inputs"][0]
    fcs = [o for o in ops if o["op"] == "FULLY_CONNECTED"]
    if fcs:
        out["features"] = fcs[-1]["inputs"][0]
    return out


def run_taps(model_path, x_i8):
    """Each tap of `taps` on every input (batch 1), as int8 (N, elements)."""
    wanted = taps(model_path)
    itp = tf.lite.Interpreter(model_path=model_path, num_threads=1,
                              experimental_op_resolver_type=REF,
                              experimental_preserve_all_tensors=True)
    itp.allocate_tensors()
    inp = itp.get_input_details()[0]
    res = {k: np.empty((len(x_i8), int(np.prod(t["shape"][1:]))), dtype=np.int8)
           for k, t in wanted.items()}
    for i in range(len(x_i8)):
        itp.set_tensor(inp["index"], x_i8[i:i + 1])
        itp.invoke()
        for k, t in wanted.items():
            v = itp.get_tensor(t["index"])
            assert v.dtype == np.int8, v.dtype
            res[k][i] = v.reshape(-1)
    return res


def save_taps(stem, x_i8, files):
    for k, y in run_taps(path(f"{stem}.tflite"), x_i8).items():
        save(f"{stem}_{k}_ref.npy", y, files)
        print(f"{stem}: {k} {y.shape}, {len(np.unique(y, axis=0))} distinct rows", flush=True)


def dequantize(q, scale, zp):
    # float32 throughout, as (q - zp) * scale is what a device would compute.
    return (q.astype(np.float32) - np.float32(zp)) * np.float32(scale)


def quantize(x, scale, zp):
    q = np.round(x.astype(np.float64) / np.float64(np.float32(scale))) + zp
    return np.clip(q, -128, 127).astype(np.int8)


def rel_l2(y, y_ref):
    y, y_ref = y.astype(np.float64), y_ref.astype(np.float64)
    return float(np.linalg.norm(y - y_ref) / np.linalg.norm(y_ref))


def compare(y_q, y_f, classifier):
    d = {"rel_l2": rel_l2(y_q, y_f),
         "max_abs": float(np.abs(y_q.astype(np.float64) - y_f).max())}
    if classifier:
        d["top1_agreement"] = float((y_q.argmax(1) == y_f.argmax(1)).mean())
    return d


def last_dense_check(model, itp):
    """Compares the .h5's last Dense kernel (no BatchNorm follows it, so the converter keeps it
    as is) with the int8 weights of the same shape in the .tflite: if the .tflite was made from
    these weights, every weight is within half a quantization step."""
    dense = [l for l in model.layers if isinstance(l, tf_keras.layers.Dense)][-1]
    kernel, bias = dense.get_weights()
    want = kernel.T  # TFLite FULLY_CONNECTED stores [outputs, inputs]
    best = None
    for t in itp.get_tensor_details():
        if t["dtype"] != np.int8 or tuple(t["shape"]) != want.shape:
            continue
        try:
            q = itp.get_tensor(t["index"])
        except ValueError:
            continue  # an activation, not a constant
        scales = np.asarray(t["quantization_parameters"]["scales"], dtype=np.float64)
        if scales.size == 0:
            continue
        s = scales.reshape(-1, 1) if scales.size == want.shape[0] else scales.reshape(1, 1)
        err_steps = float((np.abs(q.astype(np.float64) * s - want) / s).max())
        if best is None or err_steps < best["max_error_in_quant_steps"]:
            best = {"layer": dense.name, "tensor": t["name"], "shape": list(want.shape),
                    "max_error_in_quant_steps": round(err_steps, 4)}
    if best is not None:
        best["matches"] = best["max_error_in_quant_steps"] <= 0.5 + 1e-3
    return best


def litert_int8(model, calib):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(len(calib)):
            yield [calib[i:i + 1]]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def save(name, arr, files):
    p = path(name)
    np.save(p, arr)
    files[name] = arr


def do_tflite(stem, files):
    itp = interpreter(path(f"{stem}.tflite"))
    inp, out = itp.get_input_details()[0], itp.get_output_details()[0]
    x = random_int8(SEED_EVAL, N_EVAL, inp["shape"][1:])
    y = run_int8(itp, x)
    save(f"{stem}_inputs.npy", x, files)
    save(f"{stem}_ref.npy", y, files)
    save_taps(stem, x, files)
    ops, _ = analyze_tflite(path(f"{stem}.tflite"))
    print(f"{stem}: inputs {x.shape}, ref {y.shape}", flush=True)
    return itp, x, y, {"input": io_quant(inp), "output": io_quant(out),
                       "tensors": len(itp.get_tensor_details()),
                       "ops": [o["op"] for o in ops]}


def do_h5(h5stem, tstem, itp, x_i8, y_ref, files, write_big):
    model = tf_keras.models.load_model(path(f"{h5stem}.h5"), compile=False)
    inp, out = itp.get_input_details()[0], itp.get_output_details()[0]
    assert tuple(model.input_shape[1:]) == tuple(inp["shape"][1:]), (model.input_shape,
                                                                      inp["shape"])
    n_out = int(np.prod(model.output_shape[1:]))
    assert n_out == y_ref.shape[1], (model.output_shape, y_ref.shape)
    classifier = h5stem != "ad01"
    in_scale, in_zp = inp["quantization"]
    calib = dequantize(random_int8(SEED_CALIB, N_CALIB, inp["shape"][1:]), in_scale, in_zp)
    x_f = dequantize(x_i8, in_scale, in_zp)
    y_f = model.predict(x_f, batch_size=50, verbose=0).reshape(len(x_f), n_out)
    y_f = y_f.astype(np.float32)
    if write_big or h5stem not in BIG_FLOATS:
        save(f"{h5stem}_calib.npy", calib, files)
        save(f"{h5stem}_eval.npy", x_f, files)
    save(f"{h5stem}_float.npy", y_f, files)

    out_scale, out_zp = out["quantization"]
    shipped = compare(dequantize(y_ref, out_scale, out_zp), y_f, classifier)
    shipped["last_dense_weights"] = last_dense_check(model, itp)

    own = litert_int8(model, calib)
    own_name = f"{h5stem}_litert_int8.tflite"
    open(path(own_name), "wb").write(own)
    files[own_name] = None
    oitp = interpreter(content=own)
    oin, oout = oitp.get_input_details()[0], oitp.get_output_details()[0]
    x_own = quantize(x_f, *oin["quantization"])
    y_own = run_int8(oitp, x_own)
    # Calibrated on the same full int8 range, the conversion picks the shipped input
    # quantization, so it reads the committed int8 inputs as they are: its LiteRT outputs are
    # a second exactness fixture, from today's converter.
    assert np.array_equal(x_own, x_i8), f"{h5stem}: LiteRT's input quantization differs"
    save(f"{h5stem}_litert_int8_ref.npy", y_own, files)
    save_taps(f"{h5stem}_litert_int8", x_own, files)
    o_scale, o_zp = oout["quantization"]
    litert = compare(dequantize(y_own, o_scale, o_zp), y_f, classifier)
    ops, _ = analyze_tflite(path(own_name))
    print(f"{h5stem}: rel L2 litert-int8 {litert['rel_l2']:.5f}, shipped {shipped['rel_l2']:.5f},"
          f" last Dense {shipped['last_dense_weights']}", flush=True)
    return {
        "h5": f"{h5stem}.h5",
        "shipped_tflite": f"{tstem}.tflite",
        "keras_params": int(model.count_params()),
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "input_range": [float(dequantize(np.int8(-128), in_scale, in_zp)),
                        float(dequantize(np.int8(127), in_scale, in_zp))],
        "calib": f"{N_CALIB} x dequantize(default_rng({SEED_CALIB}) int8, shipped input "
                 f"scale {float(in_scale)!r}, zero point {int(in_zp)})",
        "eval": f"dequantize({tstem}_inputs.npy) with the same scale and zero point",
        "metric": "||y_q - y_f||_2 / ||y_f||_2 over all 200 x outputs values; y_q = the int8 "
                  "model's dequantized outputs, y_f = the float Keras outputs",
        "litert_int8": dict(litert, model=own_name, inputs=f"{tstem}_inputs.npy",
                            ref=f"{h5stem}_litert_int8_ref.npy", input=io_quant(oin),
                            output=io_quant(oout), ops=[o["op"] for o in ops]),
        "shipped_int8": shipped,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vww-floats", action="store_true",
                    help="also write vww_96_calib.npy and vww_96_eval.npy (33 MB, not committed)")
    args = ap.parse_args()
    tf.config.experimental.enable_op_determinism()
    files, models, errors = {}, {}, {}
    for tstem, h5stem, task in MODELS:
        itp, x, y, info = do_tflite(tstem, files)
        models[tstem] = dict(info, task=task)
        if h5stem:
            errors[h5stem] = do_h5(h5stem, tstem, itp, x, y, files, args.vww_floats)

    errors_meta = {"generator": GENERATOR, "models": errors}
    json.dump(errors_meta, open(path("errors.json"), "w"), indent=1)
    files["errors.json"] = None
    listed = sorted(set(files) | {f for f in os.listdir(DIR)
                                  if f.endswith((".tflite", ".h5"))})
    manifest = {
        "generator": GENERATOR,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "tf_keras": tf_keras.__version__, "numpy": np.__version__},
        "seeds": {"eval_inputs": SEED_EVAL, "calibration": SEED_CALIB},
        "resolver": "tf.lite.Interpreter(num_threads=1, experimental_op_resolver_type="
                    "BUILTIN_REF), batch 1",
        "models": models,
        "files": {f: {"bytes": os.path.getsize(path(f)), "sha256": sha256(path(f)),
                      **({"dtype": files[f].dtype.name, "shape": list(files[f].shape)}
                         if isinstance(files.get(f), np.ndarray) else {})}
                  for f in listed},
    }
    json.dump(manifest, open(path("fixtures.json"), "w"), indent=1)
    for h5stem, e in errors.items():
        print(h5stem, "litert", round(e["litert_int8"]["rel_l2"], 5),
              "shipped", round(e["shipped_int8"]["rel_l2"], 5))


if __name__ == "__main__":
    main()
