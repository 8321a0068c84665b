#!/usr/bin/env python3
"""Small Keras CNNs that use the ops of issue 11 item 1 end to end: tests/fixtures/ops_zoo/.

Run by hand (not in CI), after `pip install -r tools/scripts/requirements.txt`:

    python3 tools/scripts/make_op_zoo.py      # ~1 min on 2 cores; deterministic

Each model is a Keras 3 functional model with randomly initialised weights (fixed seed; no
training: the weights need not mean anything) and random BatchNormalization statistics, so the
folded convolutions are not identities. It is converted to full-integer int8 with
TFLiteConverter (Optimize.DEFAULT, TFLITE_BUILTINS_INT8, a representative dataset of N_CALIB
uniform random float inputs in [-1, 1], so the scales are those of real activations), with int8
input and output, except `float_edge` (float32 input and output: the graph starts with QUANTIZE
and ends with DEQUANTIZE).

Per model NAME, in tests/fixtures/ops_zoo/:
  NAME.tflite        the converted model
  NAME_inputs.npy    (N_EVAL, *input dims): full-range uniform random int8 inputs
                     (default_rng([SEED, 2, model index])); for float_edge float32 uniform in [-1.25, 1.25]
                     (some beyond the calibrated range, so QUANTIZE clamps), plus values on
                     half steps of the input scale
  NAME_inputs_q.npy  float_edge only: the int8 the model's QUANTIZE makes of NAME_inputs.npy,
                     computed here as TFLite's reference AffineQuantize does (f32 division,
                     round half away from zero, + zero point, clamp) and checked against
                     LiteRT's own QUANTIZE output tensor
  NAME_ref.npy       (N_EVAL, *output dims): LiteRT BUILTIN_REF outputs, one input at a time
  NAME_ref_q.npy     float_edge only: the int8 input of the final DEQUANTIZE (read with
                     experimental_preserve_all_tensors=True)
  fixtures.json      versions, seeds, quantization, op lists with options, sizes, sha256s
  README.md          the op list of every model (written by this script)
"""
import hashlib
import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np
import tensorflow as tf
import keras
from keras import layers
from tensorflow.lite.python import schema_py_generated as schema

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "ops_zoo")
GENERATOR = "python3 tools/scripts/make_op_zoo.py"
SEED = 1111
N_CALIB = 100
N_EVAL = 50
MAX_BYTES = 100_000
REF = tf.lite.experimental.OpResolverType.BUILTIN_REF


# ----------------------------------------------------------------------------- models
def hard_sigmoid(x):
    # keras.applications.MobileNetV3's own definition (ReLU(6)(x + 3) / 6).
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    # MobileNetV3's hard_swish: x * hard_sigmoid(x), which the converter fuses into HARD_SWISH.
    return layers.Multiply()([x, hard_sigmoid(x)])


class ChannelBias(layers.Layer):
    """Adds a learned [1, 1, 1, C] tensor: a broadcast ADD the converter cannot fold into a conv."""

    def build(self, input_shape):
        self.b = self.add_weight(shape=(1, 1, 1, input_shape[-1]),
                                 initializer=keras.initializers.RandomUniform(-0.5, 0.5),
                                 name="b")

    def call(self, x):
        return x + self.b


def conv_bn(x, filters, kernel, strides=1, padding="same", act=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if act is not None:
        x = layers.Activation(act)(x)
    return x


def residual():
    """ResNet basic block: conv-bn-relu, conv-bn, + shortcut, ReLU; a 1x1-conv projection
    block; a broadcast [1,1,1,C] ADD; global average pool, dense head."""
    inp = keras.Input((16, 16, 3))
    x = conv_bn(inp, 8, 3, act="relu")
    y = conv_bn(x, 8, 3, act="relu")
    y = conv_bn(y, 8, 3)
    x = layers.ReLU()(layers.Add()([x, y]))          # identity shortcut
    y = conv_bn(x, 16, 3, strides=2, act="relu")
    y = conv_bn(y, 16, 3)
    s = conv_bn(x, 16, 1, strides=2)                 # projection shortcut
    x = layers.Activation("relu")(layers.Add()([s, y]))
    x = ChannelBias()(x)                             # [1,8,8,16] + [1,1,1,16]
    x = layers.GlobalAveragePooling2D()(x)
    # large weights so that the softmax is not flat on random inputs
    out = layers.Dense(10, activation="softmax",
                       kernel_initializer=keras.initializers.RandomUniform(-2.0, 2.0))(x)
    return keras.Model(inp, out, name="residual")


def mbv3():
    """MobileNetV3-small style: Keras' Rescaling preprocessing (inputs 0..255), ZeroPadding2D
    as imagenet_utils.correct_pad makes it + a valid strided conv, hard-swish, an inverted
    residual with depthwise conv, a squeeze-excite block (GAP keepdims, 1x1 convs, hard
    sigmoid, Multiply), explicit tf.pad + a valid strided depthwise conv, a second SE with
    Dense layers and a sigmoid, Keras' own hard_swish activation, a 1x1-conv head on a
    keep-dims GAP, Flatten (logits out, no softmax)."""
    inp = keras.Input((16, 16, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inp)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = conv_bn(x, 16, 3, strides=2, padding="valid")
    x = hard_swish(x)                                              # [1,8,8,16]
    # inverted residual: expand, depthwise, SE (hard sigmoid), project, + shortcut
    y = conv_bn(x, 32, 1)
    y = hard_swish(y)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = hard_swish(y)
    se = layers.GlobalAveragePooling2D(keepdims=True)(y)           # MEAN keep_dims
    se = layers.Conv2D(8, 1, activation="relu")(se)
    se = layers.Conv2D(32, 1)(se)
    se = hard_sigmoid(se)
    y = layers.Multiply()([y, se])                                 # [1,8,8,32]*[1,1,1,32]
    y = conv_bn(y, 16, 1)
    x = layers.Add()([x, y])
    # strided depthwise block with explicit asymmetric padding, SE with Dense and sigmoid
    x = layers.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]]))(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)                                        # [1,4,4,16]
    se = layers.GlobalAveragePooling2D()(x)                        # MEAN, no keep_dims
    se = layers.Dense(4, activation="relu")(se)
    se = layers.Dense(16, activation="sigmoid")(se)
    se = layers.Reshape((1, 1, 16))(se)
    x = layers.Multiply()([x, se])
    x = conv_bn(x, 24, 1)
    x = layers.Activation("hard_swish")(x)                         # Keras' own hard_swish
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Conv2D(10, 1)(x)
    out = layers.Flatten()(x)
    return keras.Model(inp, out, name="mbv3")


def concat():
    """Inception-style: a 1x1 branch (relu) and a 1x1 + 3x3 branch (no activation)
    concatenated on channels; a third branch of ZeroPadding2D + valid max pool + 1x1 conv
    (relu6), concatenated again; a standalone ReLU; a 1x1 conv."""
    inp = keras.Input((12, 12, 8))
    a = layers.Conv2D(8, 1, activation="relu")(inp)
    b = layers.Conv2D(4, 1, activation="relu")(inp)
    b = layers.Conv2D(8, 3, padding="same")(b)
    c = layers.ZeroPadding2D(1)(inp)
    c = layers.MaxPooling2D(3, strides=1)(c)
    c = layers.Conv2D(4, 1, activation="relu6")(c)
    x = layers.Concatenate()([a, b])
    x = layers.Concatenate(axis=-1)([x, c])
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 1)(x)
    return keras.Model(inp, x, name="concat")


def activations():
    """Standalone activation layers: ReLU on the input, tanh, sigmoid, LeakyReLU, ReLU
    after an Add, ReLU6, an average pool, tanh at the output."""
    inp = keras.Input((12, 12, 8))
    x = layers.ReLU()(inp)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.Activation("tanh")(x)
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.Activation("sigmoid")(y)
    z = layers.Conv2D(8, 1)(x)
    z = layers.LeakyReLU(negative_slope=0.2)(z)
    x = layers.Add()([y, z])
    x = layers.ReLU()(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(8, 1)(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(4, 1)(x)
    x = layers.Activation("tanh")(x)
    return keras.Model(inp, x, name="activations")


def float_edge():
    """A small residual CNN converted with float32 input and output; a standalone ReLU6 after
    the global average pool."""
    inp = keras.Input((16, 16, 3))
    x = conv_bn(inp, 8, 3, strides=2, act="relu")
    y = conv_bn(x, 8, 3)
    x = layers.Add()([x, y])
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.ReLU(6.0)(x)
    out = layers.Dense(5)(x)
    return keras.Model(inp, out, name="float_edge")


MODELS = {  # name: (builder, int8 input and output, range of the calibration inputs)
    "residual": (residual, True, (-1.0, 1.0)),
    "mbv3": (mbv3, True, (0.0, 255.0)),
    "concat": (concat, True, (-1.0, 1.0)),
    "activations": (activations, True, (-1.0, 1.0)),
    "float_edge": (float_edge, False, (-1.0, 1.0)),
}


# The op sequence each conversion must give (checked, so that README.md's notes stay true).
_FLATTEN = ["SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"]  # Keras Flatten/Reshape, batch None
EXPECTED = {
    "residual": ["CONV_2D", "CONV_2D", "CONV_2D", "ADD", "CONV_2D", "CONV_2D", "CONV_2D", "ADD",
                 "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"],
    "mbv3": ["MUL", "ADD", "CONV_2D", "HARD_SWISH", "CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D",
             "HARD_SWISH", "MEAN", "CONV_2D", "CONV_2D", "MUL", "MUL", "CONV_2D", "ADD", "PAD",
             "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "FULLY_CONNECTED", "LOGISTIC"]
            + _FLATTEN + ["MUL", "CONV_2D", "HARD_SWISH", "MEAN", "CONV_2D"] + _FLATTEN,
    "concat": ["CONV_2D", "CONV_2D", "CONV_2D", "CONCATENATION", "PAD", "MAX_POOL_2D", "CONV_2D",
               "CONCATENATION", "RELU", "CONV_2D"],
    "activations": ["RELU", "CONV_2D", "TANH", "CONV_2D", "LOGISTIC", "CONV_2D", "LEAKY_RELU",
                    "ADD", "AVERAGE_POOL_2D", "CONV_2D", "CONV_2D", "TANH"],
    "float_edge": ["QUANTIZE", "CONV_2D", "CONV_2D", "ADD", "MEAN", "RELU6", "FULLY_CONNECTED",
                   "DEQUANTIZE"],
}


def build(name):
    keras.backend.clear_session()  # restart auto layer names per model
    keras.utils.set_random_seed(SEED)
    model = MODELS[name][0]()
    rng = np.random.default_rng([SEED, 7])
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)) \
                and layer.use_bias:
            # Keras initialises biases to zero; random ones exercise the int32 bias path.
            w = layer.get_weights()
            w[1] = rng.uniform(-0.2, 0.2, w[1].shape).astype(np.float32)
            layer.set_weights(w)
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c).astype(np.float32),    # gamma
                               rng.uniform(-0.3, 0.3, c).astype(np.float32),   # beta
                               rng.uniform(-0.3, 0.3, c).astype(np.float32),   # mean
                               rng.uniform(0.5, 2.0, c).astype(np.float32)])   # variance
    return model


# ----------------------------------------------------------------------------- conversion
def convert(model, int8_io, lo, hi):
    shape = (1,) + tuple(model.input_shape[1:])
    rng = np.random.default_rng([SEED, 1])
    calib = rng.uniform(lo, hi, (N_CALIB,) + shape).astype(np.float32)

    def rep():
        for c in calib:
            yield [c]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


# ----------------------------------------------------------------------------- analysis
def _enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


OPNAMES = _enum_names(schema.BuiltinOperator)
TTYPES = _enum_names(schema.TensorType)
PADDING = _enum_names(schema.Padding)
ACT = _enum_names(schema.ActivationFunctionType)
NP_TYPES = {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "FLOAT32": np.float32,
            "INT16": np.int16, "UINT8": np.uint8}


def analyze(flat):
    """Per op: name, version, options, and for every tensor its shape, type, quantization and
    (for small integer constants such as axes, paddings and shapes) its value."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
    assert len(m.subgraphs) == 1
    sg = m.subgraphs[0]

    def tinfo(i):
        if i < 0:
            return None
        t = sg.tensors[i]
        ty = TTYPES[t.type]
        d = {"index": int(i), "name": t.name.decode(), "dtype": ty.lower(),
             "shape": [int(v) for v in (t.shape if t.shape is not None else [])]}
        data = m.buffers[t.buffer].data if t.buffer > 0 else None
        d["constant"] = data is not None and len(data) > 0
        if d["constant"] and ty in ("INT32", "INT64") and len(data) <= 64:
            d["value"] = np.frombuffer(bytes(data), NP_TYPES[ty]).reshape(d["shape"]).tolist()
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            if len(q.scale) == 1:
                d["quant"] = {"scale": float(q.scale[0]), "zero_point": int(q.zeroPoint[0])}
            else:
                d["quant"] = {"per_channel": len(q.scale), "axis": int(q.quantizedDimension),
                              "zero_points_all_zero": all(int(z) == 0 for z in q.zeroPoint)}
        return d

    ops = []
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        name = OPNAMES[max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))]
        bo = op.builtinOptions
        opt = {}
        if bo is not None:
            for k, v in sorted(vars(bo).items()):
                if k == "fusedActivationFunction":
                    v = ACT[v]
                elif k == "padding":
                    v = PADDING[v]
                elif isinstance(v, np.ndarray):
                    v = v.tolist()
                elif isinstance(v, (np.floating, float)):
                    v = float(np.float32(v))
                elif isinstance(v, (np.integer, bool)):
                    v = int(v) if not isinstance(v, bool) else v
                opt[k] = v
        ops.append({"op": name, "version": int(oc.version), "options": opt,
                    "inputs": [tinfo(i) for i in op.inputs],
                    "outputs": [tinfo(i) for i in op.outputs]})
    io = {"inputs": [tinfo(i) for i in sg.inputs], "outputs": [tinfo(i) for i in sg.outputs]}
    return ops, io, len(sg.tensors)


def fmt_q(t):
    q = t.get("quant")
    if q is None:
        return ""
    if "scale" in q:
        return f" s={q['scale']:.6g} zp={q['zero_point']}"
    return f" per-channel({q['per_channel']}, axis {q['axis']})"


WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # their int32 constants are biases


def op_line(i, o):
    """One readable line per op: name, version, shapes, constants, options."""
    def t(x):
        if x is None:
            return "-"
        s = f"{x['dtype']}{x['shape']}"
        if "value" in x and o["op"] not in WEIGHTED:
            s += f"={x['value']}"
        elif x["constant"]:
            s += "(const" + (fmt_q(x) if x["dtype"] == "int8" and "scale" in x.get("quant", {})
                             else "") + ")"
        elif x["dtype"] == "int8":
            s += fmt_q(x)
        return s
    opt = " ".join(f"{k}={v}" for k, v in o["options"].items())
    ins = ", ".join(t(x) for x in o["inputs"])
    outs = ", ".join(t(x) for x in o["outputs"])
    return f"{i:2d} {o['op']} v{o['version']}: ({ins}) -> {outs}" + (f"  [{opt}]" if opt else "")


# ----------------------------------------------------------------------------- litert
def quantize_like_tflite(x, scale, zp):
    """reference_ops::AffineQuantize: round(x / (float)scale) half away from zero, + zp, clamp."""
    v = x.astype(np.float32) / np.float32(scale)
    a = np.abs(v)
    f = np.floor(a)
    r = f + (a - f >= np.float32(0.5))   # exact: a - f is exact in f32 for |a| < 2^23
    r = np.where(v < 0, -r, r)
    return np.clip(r.astype(np.int64) + zp, -128, 127).astype(np.int8)


def run(flat, xs, preserve=()):
    """LiteRT BUILTIN_REF outputs, one input at a time; also the tensors listed in preserve."""
    itp = tf.lite.Interpreter(model_content=flat, num_threads=1,
                              experimental_op_resolver_type=REF,
                              experimental_preserve_all_tensors=bool(preserve))
    itp.allocate_tensors()
    din, dout = itp.get_input_details()[0], itp.get_output_details()[0]
    outs, extra = [], {}
    for x in xs:
        itp.set_tensor(din["index"], x[None])
        itp.invoke()
        outs.append(itp.get_tensor(dout["index"])[0].copy())
        for k in preserve:
            extra.setdefault(k, []).append(itp.get_tensor(k)[0].copy())
    return itp, np.stack(outs), {k: np.stack(v) for k, v in extra.items()}


def sha256(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def rel(p):
    return os.path.relpath(p, ROOT)


def do_model(name):
    print(f"=== {name}", flush=True)
    model = build(name)
    _, int8_io, (lo, hi) = MODELS[name]
    flat = convert(model, int8_io, lo, hi)
    assert len(flat) < MAX_BYTES, (name, len(flat))
    path = os.path.join(OUT, f"{name}.tflite")
    open(path, "wb").write(flat)
    ops, io, n_tensors = analyze(flat)
    assert [o["op"] for o in ops] == EXPECTED[name], (name, [o["op"] for o in ops])
    for o in ops:
        if o["op"] == "CONCATENATION":  # LiteRT's int8 concat only copies: one quantization
            qs = {(t["quant"]["scale"], t["quant"]["zero_point"]) for t in o["inputs"] + o["outputs"]}
            assert len(qs) == 1, (name, o)
    din, dout = io["inputs"][0], io["outputs"][0]
    shape = din["shape"][1:]
    rng = np.random.default_rng([SEED, 2, list(MODELS).index(name)])
    files = {"model": path}
    if int8_io:
        assert din["dtype"] == "int8" and dout["dtype"] == "int8", io
        xs = rng.integers(-128, 128, (N_EVAL,) + tuple(shape), dtype=np.int8)
        _, ref, _ = run(flat, xs)
    else:
        assert din["dtype"] == "float32" and dout["dtype"] == "float32", io
        assert ops[0]["op"] == "QUANTIZE" and ops[-1]["op"] == "DEQUANTIZE", [o["op"] for o in ops]
        qin = ops[0]["outputs"][0]
        s, zp = qin["quant"]["scale"], qin["quant"]["zero_point"]
        xs = rng.uniform(-1.25, 1.25, (N_EVAL,) + tuple(shape)).astype(np.float32)
        # the last 10 inputs: every value on a half step (k + 1/2) * scale, where rounding
        # half away from zero and half to even differ
        k = rng.integers(-140, 140, (10,) + tuple(shape))
        xs[-10:] = ((k.astype(np.float32) + np.float32(0.5)) * np.float32(s)).astype(np.float32)
        xs_q = quantize_like_tflite(xs, s, zp)
        qidx, dqidx = qin["index"], ops[-1]["inputs"][0]["index"]
        _, ref, extra = run(flat, xs, preserve=[qidx, dqidx])
        assert np.array_equal(extra[qidx], xs_q), "QUANTIZE replica differs from LiteRT"
        ref_q = extra[dqidx]
        assert ref_q.dtype == np.int8
        dq = ops[-1]["inputs"][0]["quant"]
        want = (np.float32(dq["scale"]) * (ref_q.astype(np.int32) - dq["zero_point"])
                .astype(np.float32)).astype(np.float32)
        assert np.array_equal(want, ref), "DEQUANTIZE of ref_q differs from the float output"
        files["inputs_q"] = os.path.join(OUT, f"{name}_inputs_q.npy")
        np.save(files["inputs_q"], xs_q)
        files["ref_q"] = os.path.join(OUT, f"{name}_ref_q.npy")
        np.save(files["ref_q"], ref_q)
    files["inputs"] = os.path.join(OUT, f"{name}_inputs.npy")
    files["ref"] = os.path.join(OUT, f"{name}_ref.npy")
    np.save(files["inputs"], xs)
    np.save(files["ref"], ref)

    itp = tf.lite.Interpreter(model_content=flat)
    details = itp._get_ops_details()
    assert [d["op_name"] for d in details] == [o["op"] for o in ops]
    lines = [op_line(i, o) for i, o in enumerate(ops)]
    for ln in lines:
        print("   " + ln)
    spread = {"ref_distinct_values": int(len(np.unique(ref))),
              "ref_min": float(ref.min()), "ref_max": float(ref.max())}
    print(f"   {len(ops)} ops, {n_tensors} tensors, {len(flat)} bytes, ref spread {spread}")
    return {
        "description": " ".join(MODELS[name][0].__doc__.split()),
        "int8_io": int8_io,
        "calibration_range": [lo, hi],
        "tensors": n_tensors,
        "ops_count": len(ops),
        "op_histogram": {k: [o["op"] for o in ops].count(k) for k in sorted({o["op"] for o in ops})},
        "keras_params": int(model.count_params()),
        "input": din, "output": dout,
        "ref_spread": spread,
        "op_lines": lines,
        "ops": ops,
        "files": {k: {"path": rel(p), "bytes": os.path.getsize(p), "sha256": sha256(p)}
                  for k, p in files.items()},
    }


README_HEAD = """# End-to-end op zoo: small Keras CNNs with ADD, MEAN, PAD, CONCATENATION, ...

Small full-integer int8 models that use, between them, the ops of issue 11 item 1 the way common
Keras CNNs (residual, MobileNet-style, Inception-style) produce them, with LiteRT's reference
outputs (`OpResolverType.BUILTIN_REF`, one input at a time). Written by

```
{generator}
```

(made by hand, not in CI; deterministic). Weights are random (seed {seed}, random
BatchNormalization statistics, random biases), calibrated on {n_calib} uniform random float
inputs in [-1, 1] (mbv3, whose Rescaling layer expects pixels: in [0, 255]).
Versions: Python {python}, tensorflow {tf}, keras {keras}, numpy {numpy}.

Per model `NAME`: `NAME.tflite`, `NAME_inputs.npy` ({n_eval} full-range random int8 inputs),
`NAME_ref.npy` (LiteRT BUILTIN_REF outputs). `float_edge` has float32 input and output:
`float_edge_inputs.npy` is float32 (uniform in [-1.25, 1.25], the last 10 exactly on half steps
of the input scale), `float_edge_inputs_q.npy` the int8 its QUANTIZE makes (f32 division, round
half away from zero; checked equal to LiteRT's QUANTIZE output tensor), `float_edge_ref_q.npy`
the int8 input of its final DEQUANTIZE (checked: dequantizing it gives `float_edge_ref.npy`
bit for bit). `fixtures.json` has every op's options and every tensor's quantization.

Op lines read `index OP vVERSION: (inputs) -> outputs [options]`; small int32 constants (axes,
paddings, shapes) are shown with their values.
"""


NOTES = """## What the converter made of the Keras layers

(The op sequences are asserted by the script; the quantization values are those of this run.)

- **ReLU after Add** is fused: `ADD` with `fusedActivationFunction=RELU`, no `RELU` op
  (residual ops 3 and 7, activations op 7, float_edge op 3). A standalone `RELU` survives only
  where nothing can take it: on the model input (activations op 0) and after a `CONCATENATION`
  (concat op 8; the converter leaves CONCATENATION's own fused activation at NONE). Both
  requantize (input and output quantization differ, e.g. s=0.0147 zp=-26 -> s=0.0088 zp=-128).
  `ReLU(6.0)` after a MEAN stays a `RELU6` op (float_edge op 5, same quantization in and out).
- **Keras Rescaling(1/127.5, offset=-1)** (MobileNetV3's preprocessing) becomes `MUL` by a 0-D
  int8 constant then `ADD` of a 0-D int8 constant (mbv3 ops 0-1; shapes `[1,16,16,3]` and `[]`).
- **hard_sigmoid** `ReLU(6)(x + 3) / 6` in the squeeze-excite block: the `+ 3` is folded into
  the preceding conv's bias and the ReLU6 fused into it (mbv3 op 10), the `/ 6` is a `MUL` by a
  0-D int8 constant (op 11). `x * hard_sigmoid(x)` and Keras' `Activation("hard_swish")` both
  become `HARD_SWISH` (ops 3, 5, 7, 27).
- **ZeroPadding2D(((0,1),(0,1))) + valid strided 3x3 conv** (what
  `imagenet_utils.correct_pad` gives Keras' MobileNets) is folded into `CONV_2D padding=SAME`:
  no PAD (mbv3 op 2). `PAD` appears for `tf.pad` before a valid strided depthwise conv (mbv3 op
  15) and for `ZeroPadding2D(1)` before a valid max pool (concat op 4); paddings are an int32
  `[4,2]` constant `[[0,0],[1,1],[1,1],[0,0]]`, input and output share their quantization.
- **MEAN** (GlobalAveragePooling2D): axes an int32 `[2]` constant `[1,2]`, `keepDims=True`
  (GAP `keepdims=True`: mbv3 ops 8, 28) or `False` (residual op 9, mbv3 op 17, float_edge op
  4); input and output quantization always differ.
- **CONCATENATION**: `axis=-1` (negative), fused NONE; the converter gives every input and the
  output one quantization (asserted), by forcing the producing convs' output quantization: a
  `CONV_2D` with fused RELU may then have output zp -26 (concat ops 0-3, 6), so its RELU clamp
  is at the zero point, not at -128.
- **MUL**: squeeze-excite broadcasts `[1,8,8,32] * [1,1,1,32]` and `[1,4,4,16] * [1,1,1,16]`,
  and the 0-D constants above; fused NONE everywhere.
- **ADD**: same shape, broadcast with a `[1,1,1,16]` int8 constant (residual op 8, Keras layer
  `x + w`), a 0-D constant (mbv3 op 1); fused RELU or NONE.
- **LEAKY_RELU**: `alpha` is the float32 0.2 (0x3e4ccccd). **LOGISTIC** output s=1/256
  zp=-128, **TANH** output s=1/128 zp=0 (LiteRT's fixed output quantization).
- **Flatten / Reshape** with batch None become `SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE`
  (mbv3 ops 21-24, 30-33), as in the MNIST fixtures.
- **float_edge**: `QUANTIZE` (float32 -> int8) first, `DEQUANTIZE` (int8 -> float32) last.
"""


def write_readme(meta):
    v = meta["versions"]
    out = [README_HEAD.format(generator=GENERATOR, seed=SEED, n_calib=N_CALIB, n_eval=N_EVAL,
                              python=v["python"], tf=v["tensorflow"], keras=v["keras"],
                              numpy=v["numpy"])]
    out.append("| model | input | output | ops | tensors | bytes |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for name, m in meta["models"].items():
        i, o = m["input"], m["output"]
        out.append(f"| {name} | {i['dtype']}{i['shape']}{fmt_q(i)} | "
                   f"{o['dtype']}{o['shape']}{fmt_q(o)} | {m['ops_count']} | {m['tensors']} | "
                   f"{m['files']['model']['bytes']} |")
    out.append("")
    out.append("Ops over all models (count, versions):")
    out.append("")
    allops = {}
    for m in meta["models"].values():
        for o in m["ops"]:
            allops.setdefault(o["op"], set()).add(o["version"])
            allops.setdefault("#" + o["op"], [0])[0] += 1
    for k in sorted(x for x in allops if not x.startswith("#")):
        out.append(f"- {k}: {allops['#' + k][0]} (v{', v'.join(map(str, sorted(allops[k])))})")
    out.append("")
    out.append(NOTES)
    for name, m in meta["models"].items():
        out.append(f"## {name}")
        out.append("")
        out.append(m["description"])
        out.append("")
        out.append("```")
        out.extend(m["op_lines"])
        out.append("```")
        out.append("")
    out.append("## Files")
    out.append("")
    out.append("| file | bytes | sha256 |")
    out.append("| --- | --- | --- |")
    for m in meta["models"].values():
        for f in m["files"].values():
            out.append(f"| {os.path.basename(f['path'])} | {f['bytes']} | `{f['sha256']}` |")
    open(os.path.join(OUT, "README.md"), "w").write("\n".join(out) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    tf.config.experimental.enable_op_determinism()
    names = sys.argv[1:] or list(MODELS)
    meta = {"generator": GENERATOR,
            "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                         "keras": keras.__version__, "numpy": np.__version__,
                         "machine": platform.machine()},
            "seed": SEED, "n_calib": N_CALIB, "n_eval": N_EVAL,
            "models": {n: do_model(n) for n in names}}
    json.dump(meta, open(os.path.join(OUT, "fixtures.json"), "w"), indent=1)
    write_readme(meta)


if __name__ == "__main__":
    main()
