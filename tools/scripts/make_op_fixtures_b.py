#!/usr/bin/env python3
"""Single-op int8 models run by LiteRT's reference kernels: fixtures for tests/ops_litert_b.rs.

Run by hand (not in CI; needs tensorflow-cpu, see requirements.txt):

    python3 tools/scripts/make_op_fixtures_b.py

For each op (LOGISTIC, TANH, HARD_SWISH, MUL, LEAKY_RELU, RELU, RELU6, RELU_N1_TO_1) and
several quantization scales, a tiny tf.function is converted to a full-integer int8 .tflite
(TFLiteConverter, Optimize.DEFAULT, a representative dataset whose range sets the scales,
int8 input and output). The script checks that the model holds exactly the one op, runs it
with OpResolverType.BUILTIN_REF on inputs (all 256 int8 values for unary ops, random ones
for MUL) and writes tests/fixtures/ops_b/<op>.txt. A few cases ("patched") have their
quantization parameters rewritten in the flatbuffer to values where two plausible readings of
TFLite's arithmetic disagree (see EDGE and LEAKY_TIES), so that LiteRT decides between them.

File format (plain text, one case after another):

    case <name>
    <key> <value> <value> ...

Scales and alpha are written as the hex bits of their float32 (exact); zero points,
shapes and int8 data as decimal integers. Keys per op:
  unary ops   input_scale input_zp output_scale output_zp input output
  LEAKY_RELU  + alpha
  MUL         input1_scale input1_zp input2_scale input2_zp output_scale output_zp
              activation (NONE|RELU|RELU6|RELU_N1_TO_1) shape1 shape2 shape_out
              input1 input2 output
Also writes tests/fixtures/ops_b/glibc_f32.txt: pairs `x f(x)` (float32 bits, hex) of this
machine's glibc expf and tanhf, on which LiteRT builds its LOGISTIC/TANH tables.
"""
import ctypes
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "ops_b")
SEED = 2026
N_REPR = 64

OPCODES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ACTS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}


def f32_hex(x):
    return "0x%08x" % int(np.float32(x).view(np.uint32))


def convert(fn, specs, repr_gen):
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = repr_gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def model_ops(flat):
    """(op name, fused activation or None) of each operator in the model."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
    out = []
    for op in m.subgraphs[0].operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = OPCODES[max(code.builtinCode, code.deprecatedBuiltinCode)]
        act = getattr(op.builtinOptions, "fusedActivationFunction", None)
        alpha = getattr(op.builtinOptions, "alpha", None)
        out.append((name, ACTS.get(act) if act is not None else None, alpha))
    return out


def interpreter(flat):
    itp = tf.lite.Interpreter(model_content=flat, num_threads=1,
                              experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    itp.allocate_tensors()
    return itp


def qparams(d):
    scale, zp = d["quantization"]
    return np.float32(scale), int(zp)


def line(key, values):
    return key + " " + " ".join(str(v) for v in values)


# ----------------------------------------------------------------------------- unary ops
UNARY = {
    "LOGISTIC": lambda x: tf.math.sigmoid(x),
    "TANH": lambda x: tf.math.tanh(x),
    "HARD_SWISH": lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0),
    "RELU": lambda x: tf.nn.relu(x),
    "RELU6": lambda x: tf.nn.relu6(x),
    "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0),
}
# Ranges of the representative data: they set the input scale and zero point (and the output's,
# where the op's output is calibrated rather than fixed).
RANGES = [(-1.0, 1.0), (-8.0, 8.0), (-3.0, 5.0), (-20.0, 2.0), (-0.1, 0.3), (-6.0, 6.0),
          (-0.7, 11.0), (-50.0, 45.0), (-2.5, 0.9), (-0.02, 0.05)]
LEAKY_ALPHAS = [0.2, 0.01, 0.3, 0.1, 0.5, -0.3, 0.05, -0.7, 1.5, 0.25]
# Equal input and output scales with alpha ±0.5 make the alpha multiplier exactly ∓2^30, so
# odd negative inputs hit rounding ties: these cases tell how TFLite applies a negative
# multiplier (current versions: its magnitude, then negate; older ones: directly, which
# rounds the other way at a tie). (alpha, input scale bits, zero point).
LEAKY_TIES = [(-0.5, 0x3dcccccd, 0), (0.5, 0x3dcccccd, 0), (-0.5, 0x3c800000, 17)]
# (input scale bits, input zero point) where a table built with musl-style expf / tanhf (the
# Rust libm crate's) differs from one built with glibc's, found by a search over 200,000
# random scales: LiteRT must agree with fixnet's glibc replicas here. The converted model's
# input quantization is patched to these values.
EDGE = {
    "LOGISTIC": [(0x3c55c61d, -3), (0x3ab7e2a0, -35), (0x3b8f711e, 35), (0x3cfd8a99, 108)],
    "TANH": [(0x3cd59562, -57), (0x3b86346e, 123), (0x3ba7b142, -88), (0x3b6a605d, -124)],
    # Input and output quantization where TFLite's multiplier input_scale / output_scale
    # computed in float32 (as ReluPrepare does) quantizes to (1978959104, 0) but computed in
    # double to (1978959153, 0): the outputs for input 95 differ.
    "RELU": [(0x3ca2f90b, -128, (np.uint32(0x3cb0d9ee).view(np.float32), -128))],
}


def patch_quant(flat, scale, zero_point, output=None):
    """The model with its input tensor's quantization replaced by (scale, zero_point), and its
    output's by `output` = (scale, zero_point) if given."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
    sg = m.subgraphs[0]
    q = sg.tensors[sg.inputs[0]].quantization
    q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
    if output is not None:
        q = sg.tensors[sg.outputs[0]].quantization
        q.scale, q.zeroPoint = [float(output[0])], [int(output[1])]
    b = __import__("flatbuffers").Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def unary_case(name, fn, lo, hi, rng, alpha=None, patch=None):
    f = tf.function(fn)
    spec = tf.TensorSpec([1, 256], tf.float32)

    def repr_gen():
        for _ in range(N_REPR):
            yield [rng.uniform(lo, hi, (1, 256)).astype(np.float32)]

    flat = convert(f, [spec], repr_gen)
    if patch is not None:
        flat = patch_quant(flat, np.uint32(patch[0]).view(np.float32), patch[1],
                           *patch[2:])
    ops = model_ops(flat)
    want = "LEAKY_RELU" if alpha is not None else name
    assert [o[0] for o in ops] == [want], (name, ops)
    itp = interpreter(flat)
    din, dout = itp.get_input_details()[0], itp.get_output_details()[0]
    assert din["dtype"] == np.int8 and dout["dtype"] == np.int8
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    itp.set_tensor(din["index"], x)
    itp.invoke()
    y = itp.get_tensor(dout["index"])
    si, zi = qparams(din)
    so, zo = qparams(dout)
    if patch is not None:
        assert (si, zi) == (np.uint32(patch[0]).view(np.float32), patch[1]), (si, zi)
    tag = f"patched_0x{patch[0]:08x}_{patch[1]}" if patch is not None else f"{lo}_{hi}"
    lines = [f"case {name.lower()}_{tag}" + (f"_a{alpha}" if alpha is not None else ""),
             line("input_scale", [f32_hex(si)]), line("input_zp", [zi]),
             line("output_scale", [f32_hex(so)]), line("output_zp", [zo])]
    if alpha is not None:
        assert np.float32(ops[0][2]) == np.float32(alpha), ops
        lines.append(line("alpha", [f32_hex(alpha)]))
    lines += [line("input", x.ravel().tolist()), line("output", y.ravel().tolist())]
    return lines


# ----------------------------------------------------------------------------- mul
MUL_CASES = [
    # (shape1, shape2, range1, range2, activation)
    ([1, 4, 4, 8], [1, 4, 4, 8], (-1.0, 1.0), (-1.0, 1.0), "NONE"),
    ([1, 4, 4, 8], [1, 1, 1, 8], (-6.0, 6.0), (0.0, 1.0), "NONE"),   # squeeze-and-excite
    ([1, 3, 5, 4], [1, 1, 1, 4], (-2.0, 9.0), (0.0, 1.0), "RELU"),
    ([1, 1, 1, 6], [1, 3, 3, 6], (-0.5, 0.5), (-4.0, 3.0), "NONE"),
    ([1, 2, 3, 4], [1, 2, 1, 4], (-3.0, 3.0), (-3.0, 3.0), "RELU6"),
    ([1, 5, 1, 3], [1, 1, 4, 1], (-10.0, 10.0), (-0.2, 0.1), "NONE"),
    ([1, 16], [1, 16], (-30.0, 20.0), (-1.5, 2.5), "RELU"),
    ([1, 2, 2, 3], [1, 2, 2, 3], (-1.0, 1.0), (-1.0, 1.0), "RELU_N1_TO_1"),
]
# Scales (float32 bits: input1, input2, output; zero points 0) where TFLite's multiplier
# `s1 · s2 / s_out` computed in float32, as its Prepare does, quantizes to (1721705088, −7) but
# computed in double to (1721705121, −7); with these second-operand values and every int8 first
# operand, 16 of the 4,096 outputs tell the two apart (found by a search over random scales).
MUL_F32_EDGE = ((0x3b61ab4c, 0x3b646507, 0x3afb1fe3),
                [-111, -96, -74, -64, 64, 74, 96, 111, -128, -50, -13, -1, 1, 13, 50, 127])
MUL_ACT = {"NONE": lambda z: z, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6,
           "RELU_N1_TO_1": lambda z: tf.clip_by_value(z, -1.0, 1.0)}


def patch_tensors(flat, quant_by_shape):
    """The model with the quantization of each graph input/output replaced by
    quant_by_shape[its shape] = (scale, zero_point)."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
    sg = m.subgraphs[0]
    for t in list(sg.inputs) + list(sg.outputs):
        scale, zp = quant_by_shape[tuple(int(d) for d in sg.tensors[t].shape)]
        q = sg.tensors[t].quantization
        q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    b = __import__("flatbuffers").Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def mul_case(i, shape1, shape2, r1, r2, act, rng, patch=None):
    f = tf.function(lambda a, b: MUL_ACT[act](a * b))
    specs = [tf.TensorSpec(shape1, tf.float32), tf.TensorSpec(shape2, tf.float32)]

    def repr_gen():
        for _ in range(N_REPR):
            yield [rng.uniform(*r1, shape1).astype(np.float32),
                   rng.uniform(*r2, shape2).astype(np.float32)]

    flat = convert(f, specs, repr_gen)
    if patch is not None:
        flat = patch_tensors(flat, patch)
    ops = model_ops(flat)
    assert [o[0] for o in ops] == ["MUL"] and ops[0][1] == act, (act, ops)
    itp = interpreter(flat)
    dins = itp.get_input_details()
    # The converter may order the inputs either way: match them by shape, then by name.
    dins = sorted(dins, key=lambda d: d["name"])
    d1, d2 = dins
    if list(d1["shape"]) != shape1 or list(d2["shape"]) != shape2:
        d1, d2 = d2, d1
    assert list(d1["shape"]) == shape1 and list(d2["shape"]) == shape2
    dout = itp.get_output_details()[0]
    if patch is None:
        x1 = rng.integers(-128, 128, shape1, dtype=np.int8)
        x2 = rng.integers(-128, 128, shape2, dtype=np.int8)
    else:
        x1 = np.arange(-128, 128, dtype=np.int8).reshape(shape1)
        x2 = np.array(MUL_F32_EDGE[1], dtype=np.int8).reshape(shape2)
    itp.set_tensor(d1["index"], x1)
    itp.set_tensor(d2["index"], x2)
    itp.invoke()
    y = itp.get_tensor(dout["index"])
    # Which tensor is the op's first input decides nothing (MUL is symmetric in TFLite's
    # formula), but record the op's order so the test runs exactly what LiteRT ran.
    s1, z1 = qparams(d1)
    s2, z2 = qparams(d2)
    so, zo = qparams(dout)
    if patch is not None:
        assert (s1, s2, so) == tuple(patch[tuple(d)][0] for d in (shape1, shape2, y.shape))
    return [f"case mul_{i}_{act.lower()}" + ("_patched" if patch is not None else ""),
            line("input1_scale", [f32_hex(s1)]), line("input1_zp", [z1]),
            line("input2_scale", [f32_hex(s2)]), line("input2_zp", [z2]),
            line("output_scale", [f32_hex(so)]), line("output_zp", [zo]),
            line("activation", [act]),
            line("shape1", shape1), line("shape2", shape2), line("shape_out", list(y.shape)),
            line("input1", x1.ravel().tolist()), line("input2", x2.ravel().tolist()),
            line("output", y.ravel().tolist())]


# ----------------------------------------------------------------------------- glibc
def glibc_lines(rng):
    libm = ctypes.CDLL("libm.so.6")
    out = []
    for fname, lo, hi in (("expf", -105.0, 90.0), ("expf", -3.0, 3.0),
                          ("tanhf", -12.0, 12.0), ("tanhf", -1.2, 1.2)):
        f = getattr(libm, fname)
        f.restype = ctypes.c_float
        f.argtypes = [ctypes.c_float]
        for x in rng.uniform(lo, hi, 1000).astype(np.float32):
            out.append(f"{fname} {f32_hex(x)} {f32_hex(f(float(x)))}")
    return out


def write(name, lines):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    with open(path, "w") as fo:
        fo.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(lines)} lines)")


def main():
    print("tensorflow", tf.__version__, file=sys.stderr)
    for name, fn in UNARY.items():
        rng = np.random.default_rng([SEED, len(name)])
        lines = []
        for lo, hi in RANGES:
            lines += unary_case(name, fn, lo, hi, rng)
        for patch in EDGE.get(name, []):
            lines += unary_case(name, fn, -1.0, 1.0, rng, patch=patch)
        write(f"{name.lower()}.txt", lines)
    rng = np.random.default_rng([SEED, 1])
    lines = []
    for (lo, hi), alpha in zip(RANGES, LEAKY_ALPHAS):
        lines += unary_case("LEAKY_RELU", lambda x, a=alpha: tf.nn.leaky_relu(x, alpha=a),
                            lo, hi, rng, alpha=alpha)
    for alpha, bits, zp in LEAKY_TIES:
        lines += unary_case("LEAKY_RELU", lambda x, a=alpha: tf.nn.leaky_relu(x, alpha=a),
                            -1.0, 1.0, rng, alpha=alpha, patch=(bits, zp, (np.uint32(bits).view(np.float32), zp)))
    write("leaky_relu.txt", lines)
    rng = np.random.default_rng([SEED, 2])
    lines = []
    for i, case in enumerate(MUL_CASES):
        lines += mul_case(i, *case, rng)
    bits, q2 = MUL_F32_EDGE
    s1, s2, so = (np.uint32(b).view(np.float32) for b in bits)
    shapes = ([1, 1, 256, 1], [1, len(q2), 1, 1])
    patch = {(1, 1, 256, 1): (s1, 0), (1, len(q2), 1, 1): (s2, 0), (1, len(q2), 256, 1): (so, 0)}
    lines += mul_case(len(MUL_CASES), *shapes, (-1.0, 1.0), (-1.0, 1.0), "NONE", rng, patch=patch)
    write("mul.txt", lines)
    write("glibc_f32.txt", glibc_lines(np.random.default_rng([SEED, 3])))


if __name__ == "__main__":
    main()
