#!/usr/bin/env python3
"""Single-op int8 fixtures for ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE.

Builds tiny models with tf.function + TFLiteConverter (full-integer post-training
quantization, a random representative dataset), runs them with LiteRT's reference
kernels (OpResolverType.BUILTIN_REF) on random inputs with every intermediate tensor
preserved, and writes, for every op of interest in every model and every sample, its
inputs, its output and the quantization parameters the kernel needs to
tests/fixtures/ops/ops_a.txt. tests/ops_litert_a.rs runs fixnet's kernels on them and
asserts every byte equal.

File format (one token list per line, whitespace separated):
    case <name> <OP>
    opt <key> <value>...                 op options (fused activation, keep_dims, axis)
    input|output <dtype> <dims> <scale> <zero_point> <values>...
    end
<dims> is 1x4x4x3 (or "scalar"); <scale> is the f32 bit pattern in hex (00000000 when the
tensor is not quantized); values are decimal for integer tensors and f32 bit patterns in hex
for float32 tensors.

Versions: Python 3.11.7, tensorflow-cpu 2.21.0, numpy 2.4.6. Deterministic (fixed seeds).
Usage: python3 tools/scripts/make_op_fixtures_a.py
"""
import os
import struct

import flatbuffers
import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tensorflow.lite.python import schema_py_generated as schema

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "ops", "ops_a.txt")
SAMPLES = 3
WANTED = {"ADD", "MEAN", "PAD", "PADV2", "CONCATENATION", "QUANTIZE", "DEQUANTIZE"}


def _names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


OPNAMES = _names(schema.BuiltinOperator)
ACT = _names(schema.ActivationFunctionType)


def f32_hex(x):
    return struct.unpack("<I", struct.pack("<f", float(np.float32(x))))[0]


def convert(fn, specs, ranges, int8_io, seed):
    """Full-integer quantization of `fn` (a tf.function or a Keras model); the representative
    inputs of input i are uniform in ranges[i], so that every input gets its own scale."""
    rng = np.random.default_rng(seed)
    if isinstance(fn, keras.Model):
        conv = tf.lite.TFLiteConverter.from_keras_model(fn)
    else:
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [fn.get_concrete_function(*specs)], fn)

    def rep():
        for _ in range(50):
            yield [rng.uniform(lo, hi, s.shape).astype(np.float32)
                   for s, (lo, hi) in zip(specs, ranges)]
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def op_list(buf):
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    sg = m.subgraphs[0]
    ops = []
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        name = OPNAMES[max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))]
        bo = op.builtinOptions
        opts = []
        if name in ("ADD", "CONCATENATION"):
            opts.append(("activation", ACT[bo.fusedActivationFunction]))
        if name == "CONCATENATION":
            opts.append(("axis", str(bo.axis)))
        if name == "MEAN":
            opts.append(("keep_dims", str(int(bool(bo.keepDims)))))
        ops.append((name, list(op.inputs), list(op.outputs), opts))
    return ops


def tensor_line(kind, det, value):
    dtype = {np.int8: "i8", np.int32: "i32", np.float32: "f32"}[det["dtype"]]
    dims = "x".join(str(int(d)) for d in det["shape"]) or "scalar"
    q = det["quantization_parameters"]
    scale = f32_hex(q["scales"][0]) if len(q["scales"]) == 1 else 0
    zp = int(q["zero_points"][0]) if len(q["zero_points"]) == 1 else 0
    flat = np.asarray(value).reshape(-1)
    if dtype == "f32":
        vals = " ".join(f"{f32_hex(v):08x}" for v in flat)
    else:
        vals = " ".join(str(int(v)) for v in flat)
    return f"{kind} {dtype} {dims} {scale:08x} {zp} {vals}".rstrip()


def interpreter(buf):
    itp = tf.lite.Interpreter(
        model_content=buf,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    itp.allocate_tensors()
    return itp


def random_inputs(itp, ranges, rng):
    xs = []
    for d, (lo, hi) in zip(itp.get_input_details(), ranges):
        if d["dtype"] == np.int8:
            xs.append(rng.integers(-128, 128, d["shape"]).astype(np.int8))
        else:
            # Float inputs a little beyond the calibrated range, so clamping happens.
            span = hi - lo
            xs.append(rng.uniform(lo - 0.2 * span, hi + 0.2 * span, d["shape"]).astype(np.float32))
    return xs


def run_cases(name, buf, ranges, seed, lines, counts, extra=None):
    """Writes a case for every wanted op of the model, for SAMPLES random inputs plus the
    inputs `extra(itp, rng)` picks."""
    itp = interpreter(buf)
    dets = {d["index"]: d for d in itp.get_tensor_details()}
    ops = op_list(buf)
    rng = np.random.default_rng(seed + 1000)
    samples = [random_inputs(itp, ranges, rng) for _ in range(SAMPLES)]
    if extra is not None:
        samples += extra(itp, rng, buf)
    for sample, xs in enumerate(samples):
        for d, x in zip(itp.get_input_details(), xs):
            itp.set_tensor(d["index"], x)
        itp.invoke()
        for k, (op, ins, outs, opts) in enumerate(ops):
            if op not in WANTED:
                continue
            lines.append(f"case {name}_op{k}_s{sample} {op}")
            for key, val in opts:
                lines.append(f"opt {key} {val}")
            for i in ins:
                lines.append(tensor_line("input", dets[i], itp.get_tensor(i)))
            for o in outs:
                lines.append(tensor_line("output", dets[o], itp.get_tensor(o)))
            lines.append("end")
            counts[op] = counts.get(op, 0) + 1
    return [o[0] for o in ops]


# ----------------------------------------------------------------------------- model surgery
def repack(m):
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def same_quant_output(buf):
    """The model with its one op's output quantization set to its first input's (the
    converter never makes such a MEAN by itself)."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    sg = m.subgraphs[0]
    (op,) = sg.operators
    src, dst = sg.tensors[op.inputs[0]].quantization, sg.tensors[op.outputs[0]].quantization
    dst.scale, dst.zeroPoint = list(src.scale), list(src.zeroPoint)
    return repack(m)


def rescale_first_input(buf):
    """The model with its one op's first input given a different scale (for CONCATENATION,
    whose int8 Prepare then fails)."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    sg = m.subgraphs[0]
    (op,) = sg.operators
    q = sg.tensors[op.inputs[0]].quantization
    q.scale = [float(np.float32(q.scale[0] * 1.5))]
    return repack(m)


# ----------------------------------------------------------------------------- QUANTIZE search
def near_half_steps(itp, rng, buf, count=2):
    """Float inputs at (k + 1/2) steps of the scale of the QUANTIZE that reads them, and one
    float32 step either side: where rounding the quotient in float32 or in float64 can
    differ."""
    dets = {d["index"]: d for d in itp.get_tensor_details()}
    quant_of = {}
    for op, ins, outs, _ in op_list(buf):
        if op == "QUANTIZE":
            q = dets[outs[0]]["quantization_parameters"]
            quant_of[ins[0]] = (np.float32(q["scales"][0]), int(q["zero_points"][0]))
    samples = []
    for _ in range(count):
        xs = []
        for d in itp.get_input_details():
            scale, zp = quant_of[d["index"]]
            k = rng.integers(-128 - zp, 128 - zp, d["shape"]).astype(np.float64)
            x = ((k + 0.5) * np.float64(scale)).astype(np.float32)
            nudge = rng.integers(-1, 2, d["shape"])
            x = np.where(nudge > 0, np.nextafter(x, np.float32(np.inf)),
                         np.where(nudge < 0, np.nextafter(x, np.float32(-np.inf)), x))
            xs.append(x.astype(np.float32))
        samples.append(xs)
    return samples


# ----------------------------------------------------------------------------- MEAN search
# Two formulas fit LiteRT's int8 MEAN on random inputs almost always: the multiplier of
# QuantizedMeanOrSum, QuantizeMultiplier(s_in/s_out) re-adapted by 1/n in integers (what
# fixnet implements), and QuantizeMultiplier(s_in/(s_out*n)) directly. They differ in the
# last bits of the multiplier; these inputs are ones where the outputs differ, so that the
# fixtures decide between them.
def _qm(real):
    q, e = np.frexp(real)
    qf = int(np.floor(abs(q) * 2.0**31 + 0.5)) * (1 if q >= 0 else -1)
    if qf == 2**31:
        qf //= 2
        e += 1
    return (0, 0) if e < -31 else (qf, int(e))


def _mbqm(x, m, s):
    x = x << max(s, 0)
    ab = x * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    hi = abs(ab + nudge) // (1 << 31) * (1 if ab + nudge >= 0 else -1)
    r = max(-s, 0)
    return hi if r == 0 else int(np.sign(hi)) * ((abs(hi) + (1 << (r - 1))) >> r)


def _mean_formulas(s_in, z_in, s_out, z_out, n, sums):
    m, e = _qm(float(s_in) / float(s_out))
    k = min(n.bit_length() - 1, 32, 31 + e)
    ma, ea = (m << k) // n, e - k
    mb, eb = _qm(float(s_in) / (float(s_out) * n))
    a = [min(max(_mbqm(int(t) - z_in * n, ma, ea) + z_out, -128), 127) for t in sums]
    b = [min(max(_mbqm(int(t) - z_in * n, mb, eb) + z_out, -128), 127) for t in sums]
    return a, b


def mean_disagreements(itp, rng, buf, want=3, tries=4000):
    d, o = itp.get_input_details()[0], itp.get_output_details()[0]
    if d["dtype"] != np.int8:
        return []
    (s_in, z_in), (s_out, z_out) = d["quantization"], o["quantization"]
    n = int(d["shape"][1] * d["shape"][2])
    found = []
    for _ in range(tries):
        x = rng.integers(-128, 128, d["shape"]).astype(np.int8)
        a, b = _mean_formulas(s_in, z_in, s_out, z_out, n, x.astype(np.int64).sum(axis=(0, 1, 2)))
        if a != b:
            found.append([x])
            if len(found) == want:
                break
    return found


def keras_model(shapes, body):
    inputs = [keras.Input(shape) for shape in shapes]
    return keras.Model(inputs, body(*inputs))


def spec(*shape):
    return tf.TensorSpec(shape, tf.float32)


def models():
    """(name, fn, input specs, representative ranges, int8 io[, options]): options may hold
    `patch` (model surgery after conversion) and `extra` (inputs chosen per model)."""
    m = []
    # ---- ADD: same shapes, broadcasts, scalar constant, activations, unequal input scales
    m.append(("add_same", tf.function(lambda a, b: a + b),
              [spec(1, 4, 4, 3), spec(1, 4, 4, 3)], [(-1, 1), (-4, 3)], True))
    m.append(("add_relu", tf.function(lambda a, b: tf.nn.relu(a + b)),
              [spec(1, 3, 5, 4), spec(1, 3, 5, 4)], [(-2, 6), (-0.5, 0.7)], True))
    m.append(("add_relu6", tf.function(lambda a, b: tf.nn.relu6(a + b)),
              [spec(1, 2, 3, 8), spec(1, 2, 3, 8)], [(-3, 9), (-3, 9)], True))
    m.append(("add_bcast_c", tf.function(lambda a, b: a + b),
              [spec(1, 4, 4, 3), spec(1, 1, 1, 3)], [(-1, 1), (-8, 2)], True))
    m.append(("add_bcast_first", tf.function(lambda a, b: a + b),
              [spec(1, 1, 1, 5), spec(1, 3, 2, 5)], [(0, 10), (-1, 1)], True))
    m.append(("add_bcast_hw", tf.function(lambda a, b: a + b),
              [spec(1, 4, 1, 3), spec(1, 1, 5, 3)], [(-2, 2), (-1, 0.5)], True))
    m.append(("add_scalar", tf.function(lambda a: a + tf.constant(0.75)),
              [spec(1, 3, 3, 2)], [(-1, 1)], True))
    m.append(("add_2d", tf.function(lambda a, b: a + b),
              [spec(1, 10), spec(1, 10)], [(-5, 5), (-0.1, 0.3)], True))
    # ---- MEAN over H and W (GlobalAveragePooling2D), keep_dims both ways, with different
    # and (by model surgery) equal input and output quantization
    mean_shapes = [((1, 5, 5, 8), (-1, 1)), ((1, 7, 3, 16), (0, 6)), ((1, 2, 2, 4), (-3, 1)),
                   ((1, 8, 8, 10), (-2, 5)), ((1, 1, 1, 6), (-1, 1)), ((1, 13, 7, 3), (-4, 4)),
                   ((1, 32, 32, 2), (0, 1))]
    for i, (shape, rng_) in enumerate(mean_shapes):
        for keep in (True, False):
            fn = tf.function(lambda x, keep=keep: tf.reduce_mean(x, [1, 2], keepdims=keep))
            tag = "keep" if keep else "flat"
            m.append((f"mean_{tag}{i}", fn, [spec(*shape)], [rng_], True,
                      {"extra": mean_disagreements}))
            if i in (0, 1, 5):
                m.append((f"mean_{tag}{i}_samequant", fn, [spec(*shape)], [rng_], True,
                          {"extra": mean_disagreements, "patch": same_quant_output}))
    # ---- PAD (ZeroPadding2D and general constant paddings, 2-D to 4-D)
    m.append(("pad_hw", tf.function(lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 2], [0, 0]])),
              [spec(1, 3, 4, 2)], [(-1, 2)], True))
    m.append(("pad_asym", tf.function(lambda x: tf.pad(x, [[0, 0], [0, 2], [3, 1], [1, 2]])),
              [spec(1, 2, 3, 3)], [(0.5, 4)], True))
    m.append(("pad_2d", tf.function(lambda x: tf.pad(x, [[0, 0], [2, 3]])),
              [spec(1, 6)], [(-5, -1)], True))
    m.append(("pad_3d", tf.function(lambda x: tf.pad(x, [[0, 0], [1, 0], [0, 2]])),
              [spec(1, 3, 4)], [(-1, 1)], True))
    # ---- CONCATENATION along every axis, inputs with their own ranges
    m.append(("concat_c", tf.function(lambda a, b: tf.concat([a, b], 3)),
              [spec(1, 3, 3, 2), spec(1, 3, 3, 5)], [(-1, 1), (-1, 1)], True))
    m.append(("concat_c_scales", tf.function(lambda a, b, c: tf.concat([a, b, c], 3)),
              [spec(1, 2, 3, 2), spec(1, 2, 3, 3), spec(1, 2, 3, 1)],
              [(-1, 1), (-6, 2), (0, 0.5)], True))
    m.append(("concat_h", tf.function(lambda a, b: tf.concat([a, b], 1)),
              [spec(1, 2, 3, 4), spec(1, 4, 3, 4)], [(-2, 2), (-1, 3)], True))
    m.append(("concat_w", tf.function(lambda a, b: tf.concat([a, b], -2)),
              [spec(1, 2, 1, 3), spec(1, 2, 3, 3)], [(0, 1), (0, 1)], True))
    m.append(("concat_2d", tf.function(lambda a, b: tf.concat([a, b], 1)),
              [spec(1, 4), spec(1, 6)], [(-3, 3), (-9, 1)], True))
    # A softmax output has the fixed quantization (1/256, -128): the converter requantizes it
    # to the concatenation's with an int8 -> int8 QUANTIZE.
    m.append(("concat_softmax", tf.function(lambda a: tf.concat([tf.nn.softmax(a), a], 1)),
              [spec(1, 8)], [(-3, 5)], True))
    m.append(("concat_sigmoid", tf.function(lambda a, b: tf.concat([tf.sigmoid(a), b], 3)),
              [spec(1, 2, 2, 3), spec(1, 2, 2, 2)], [(-6, 6), (-0.2, 0.3)], True))
    # ---- QUANTIZE (float input) and DEQUANTIZE (float output)
    m.append(("float_io_add", tf.function(lambda a, b: a + b),
              [spec(1, 4, 4, 3), spec(1, 4, 4, 3)], [(-1, 1), (-4, 3)], False,
              {"extra": near_half_steps}))
    m.append(("float_io_mean", tf.function(lambda x: tf.reduce_mean(x, [1, 2])),
              [spec(1, 6, 6, 5)], [(-10, 0.5)], False, {"extra": near_half_steps}))
    # ---- The same ops from Keras layers
    m.append(("keras_add_relu", keras_model([(4, 4, 3), (4, 4, 3)],
                                            lambda a, b: layers.ReLU()(layers.Add()([a, b]))),
              [spec(1, 4, 4, 3), spec(1, 4, 4, 3)], [(-1, 2), (-3, 1)], True))
    m.append(("keras_gap", keras_model([(6, 5, 8)], lambda x: layers.GlobalAveragePooling2D()(x)),
              [spec(1, 6, 5, 8)], [(-2, 3)], True, {"extra": mean_disagreements}))
    m.append(("keras_gap_keepdims",
              keras_model([(3, 3, 4)], lambda x: layers.GlobalAveragePooling2D(keepdims=True)(x)),
              [spec(1, 3, 3, 4)], [(0, 1)], True, {"extra": mean_disagreements}))
    m.append(("keras_zeropad",
              keras_model([(3, 4, 2)], lambda x: layers.ZeroPadding2D(((1, 0), (2, 1)))(x)),
              [spec(1, 3, 4, 2)], [(-1, 3)], True))
    m.append(("keras_concat", keras_model([(2, 2, 3), (2, 2, 4)],
                                          lambda a, b: layers.Concatenate()([a, b])),
              [spec(1, 2, 2, 3), spec(1, 2, 2, 4)], [(-1, 1), (-2, 2)], True))
    # ---- PADV2: an explicit pad value (an int8 constant in the output's quantization)
    m.append(("padv2", tf.function(lambda x: tf.pad(x, [[0, 0], [1, 0], [0, 1], [0, 0]],
                                                     constant_values=0.5)),
              [spec(1, 2, 2, 3)], [(-1, 1)], True))
    m.append(("float_io_pad", tf.function(lambda x: tf.pad(x, [[0, 0], [1, 1], [0, 0], [2, 0]])),
              [spec(1, 3, 3, 7)], [(-0.3, 0.1)], False, {"extra": near_half_steps}))
    return m


def concat_rescaled_fails():
    """LiteRT refuses an int8 CONCATENATION whose inputs are not quantized like its output
    (Prepare: `TF_LITE_ENSURE_EQ(t->params.scale, output->params.scale)`)."""
    fn = tf.function(lambda a, b: tf.concat([a, b], 3))
    specs = [spec(1, 2, 2, 2), spec(1, 2, 2, 3)]
    buf = rescale_first_input(convert(fn, specs, [(-1, 1), (-1, 1)], True, 99))
    try:
        interpreter(buf)
    except RuntimeError as e:
        return str(e).splitlines()[0]
    raise AssertionError("LiteRT accepted a rescaling int8 CONCATENATION")


def main():
    lines = ["# generated by tools/scripts/make_op_fixtures_a.py; do not edit"]
    counts = {}
    for seed, entry in enumerate(models()):
        name, fn, specs, ranges, int8_io = entry[:5]
        options = entry[5] if len(entry) > 5 else {}
        keras.utils.set_random_seed(seed)
        buf = convert(fn, specs, ranges, int8_io, seed)
        if "patch" in options:
            buf = options["patch"](buf)
        ops = run_cases(name, buf, ranges, seed, lines, counts, options.get("extra"))
        print(f"{name}: {' '.join(ops)}")
    print("rescaling int8 CONCATENATION refused by LiteRT:", concat_rescaled_fails())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("cases:", counts)


if __name__ == "__main__":
    main()
