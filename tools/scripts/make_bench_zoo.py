#!/usr/bin/env python3
"""Small models of the shapes users bring besides the seed CNN, for the speed table of
docs/benchmarks.md and a bit-exactness test: tests/fixtures/bench_zoo/.

Run by hand (not in CI), after `pip install -r tools/scripts/requirements.txt`:

    python3 tools/scripts/make_bench_zoo.py      # ~1 min on 2 cores; deterministic

Models (Keras 3, fixed seed):
  kws_stream  a streaming keyword-spotting model: 49 frames x 40 features as a [49, 1, 40]
              image; a (3, 1) conv, then three blocks of a (5, 1) depthwise conv (the first
              with stride 2 in time) and a 1x1 pointwise conv, global average pool, Dense(12).
              Random weights, calibrated on uniform random features in [-1, 1].
  same_cnn    a 3x3 SAME CNN on 28x28 digits: Conv(8) -> Conv(16, stride 2) -> Conv(16)
              -> AveragePooling2D(2) -> Flatten -> Dense(10); trained on the repo's MNIST.
  dw_cnn      a small CNN with a depthwise 3x3 layer on 28x28 digits: Conv(8, stride 2)
              -> DepthwiseConv(3x3) -> Conv(16, 1x1) -> MaxPool(2) -> Flatten -> Dense(10);
              trained on the repo's MNIST.
  mlp         an MLP 784-128-10 on flattened digits; trained on the repo's MNIST.

Digit models train 2 epochs (adam, sparse categorical cross-entropy) on data/mnist's 8,000
training digits scaled to [0, 1], are calibrated on 200 of them and evaluated on its 2,000 test
digits (accuracy recorded in fixtures.json). Every model is converted to full-integer int8
(int8 input and output) and gets N_EVAL full-range random int8 inputs with LiteRT's
BUILTIN_REF outputs (NAME_inputs.npy, NAME_ref.npy), as tests/fixtures/ops_zoo does.
"""
import gzip
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))
import make_op_zoo as zoo  # noqa: E402  (its conversion, LiteRT and analysis helpers)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

OUT = os.path.join(zoo.ROOT, "tests", "fixtures", "bench_zoo")
GENERATOR = "python3 tools/scripts/make_bench_zoo.py"
SEED = 2222
N_CALIB = 200
N_EVAL = 50
EPOCHS = 2


def idx(name):
    data = gzip.open(os.path.join(zoo.ROOT, "data", "mnist", name)).read()
    if int.from_bytes(data[:4], "big") == 0x803:
        n = int.from_bytes(data[4:8], "big")
        return np.frombuffer(data[16:], np.uint8).reshape(n, 28, 28, 1)
    return np.frombuffer(data[8:], np.uint8)


def kws_stream():
    inp = keras.Input((49, 1, 40))
    x = layers.Conv2D(64, (3, 1), activation="relu")(inp)
    for stride in (2, 1, 1):
        x = layers.DepthwiseConv2D((5, 1), strides=(stride, 1), padding="same",
                                   activation="relu")(x)
        x = layers.Conv2D(64, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(12, activation="softmax",
                       kernel_initializer=keras.initializers.RandomUniform(-1.0, 1.0))(x)
    return keras.Model(inp, out, name="kws_stream")


def same_cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="same_cnn")


def dw_cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="dw_cnn")


def mlp():
    inp = keras.Input((784,))
    x = layers.Dense(128, activation="relu")(inp)
    out = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="mlp")


MODELS = {"kws_stream": (kws_stream, False), "same_cnn": (same_cnn, True),
          "dw_cnn": (dw_cnn, True), "mlp": (mlp, True)}  # name: (builder, trained on digits)


def convert(model, calib):
    def rep():
        for c in calib:
            yield [c[None]]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def int8_accuracy(flat, images, labels):
    itp = tf.lite.Interpreter(model_content=flat, num_threads=1,
                              experimental_op_resolver_type=zoo.REF)
    itp.allocate_tensors()
    din, dout = itp.get_input_details()[0], itp.get_output_details()[0]
    s, zp = din["quantization"]
    right = 0
    for x, y in zip(images, labels):
        q = np.clip(np.round(x / s) + zp, -128, 127).astype(np.int8)
        itp.set_tensor(din["index"], q.reshape(din["shape"]))
        itp.invoke()
        right += int(np.argmax(itp.get_tensor(dout["index"])[0]) == y)
    return right / len(labels)


def do_model(name, digits):
    print(f"=== {name}", flush=True)
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    builder, trained = MODELS[name]
    model = builder()
    info = {"description": " ".join(builder.__name__.split()), "trained": trained}
    shape = tuple(model.input_shape[1:])
    if trained:
        (xtr, ytr), (xte, yte) = digits
        xtr = xtr.reshape((-1,) + shape)
        xte = xte.reshape((-1,) + shape)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(xtr, ytr, epochs=EPOCHS, batch_size=64, verbose=0)
        info["float_accuracy"] = float(model.evaluate(xte, yte, verbose=0)[1])
        calib = xtr[:N_CALIB]
    else:
        rng = np.random.default_rng([SEED, 1])
        calib = rng.uniform(-1.0, 1.0, (N_CALIB,) + shape).astype(np.float32)
    flat = convert(model, calib)
    if trained:
        info["int8_accuracy"] = int8_accuracy(flat, xte, yte)
        print(f"   accuracy float {info['float_accuracy']:.4f} int8 {info['int8_accuracy']:.4f}")
    path = os.path.join(OUT, f"{name}.tflite")
    open(path, "wb").write(flat)
    ops, io, n_tensors = zoo.analyze(flat)
    din = io["inputs"][0]
    rng = np.random.default_rng([SEED, 2, list(MODELS).index(name)])
    xs = rng.integers(-128, 128, (N_EVAL,) + tuple(din["shape"][1:]), dtype=np.int8)
    _, ref, _ = zoo.run(flat, xs)
    files = {"model": path, "inputs": os.path.join(OUT, f"{name}_inputs.npy"),
             "ref": os.path.join(OUT, f"{name}_ref.npy")}
    np.save(files["inputs"], xs)
    np.save(files["ref"], ref)
    lines = [zoo.op_line(i, o) for i, o in enumerate(ops)]
    for ln in lines:
        print("   " + ln)
    info.update({
        "tensors": n_tensors,
        "keras_params": int(model.count_params()),
        "input": din, "output": io["outputs"][0],
        "op_lines": lines,
        "files": {k: {"path": zoo.rel(p), "bytes": os.path.getsize(p), "sha256": zoo.sha256(p)}
                  for k, p in files.items()},
    })
    return info


def main():
    os.makedirs(OUT, exist_ok=True)
    digits = ((idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0,
               idx("train-labels-idx1-ubyte.gz")),
              (idx("test-images-idx3-ubyte.gz").astype(np.float32) / 255.0,
               idx("test-labels-idx1-ubyte.gz")))
    manifest = {
        "generator": GENERATOR,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
        "seed": SEED, "n_calib": N_CALIB, "n_eval": N_EVAL, "epochs": EPOCHS,
        "models": {name: do_model(name, digits) for name in MODELS},
    }
    json.dump(manifest, open(os.path.join(OUT, "fixtures.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
