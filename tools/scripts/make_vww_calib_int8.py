#!/usr/bin/env python3
"""Write tests/fixtures/mlperf/vww_96_calib_int8.npy (2.7 MB, numpy only).

vww_96_calib.npy (11 MB of float32) is not committed (make_mlperf_fixtures.py writes it only
with --vww-floats); it is dequantize(random_int8(SEED_CALIB, 100, (96, 96, 3))) with the
shipped vww_96_int8.tflite's input scale 1/255 and zero point -128. This file holds those int8
values, so the Keras import test calibrates on exactly the inputs LiteRT's own conversion
(vww_96_litert_int8.tflite) was calibrated on. Same generator as make_mlperf_fixtures.py.

    python3 tools/scripts/make_vww_calib_int8.py
"""
import os

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEED_CALIB = 5678  # make_mlperf_fixtures.py's SEED_CALIB
N_CALIB = 100


def random_int8(seed, n, dims):
    # make_mlperf_fixtures.py's random_int8, repeated here to avoid importing TensorFlow.
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 127, size=(n, *dims), dtype=np.int8, endpoint=True)


def main():
    x = random_int8(SEED_CALIB, N_CALIB, (96, 96, 3))
    # Check the generator against a committed float calibration file made the same way.
    resnet = np.load(os.path.join(ROOT, "tests/fixtures/mlperf/pretrainedResnet_calib.npy"))
    want = (random_int8(SEED_CALIB, N_CALIB, (32, 32, 3)).astype(np.float32) + 128) * 1.0
    assert np.array_equal(resnet, want), "random_int8 no longer matches the committed fixtures"
    np.save(os.path.join(ROOT, "tests/fixtures/mlperf/vww_96_calib_int8.npy"), x)
    print("vww_96_calib_int8.npy", x.shape, x.dtype)


if __name__ == "__main__":
    main()
