#!/usr/bin/env python3
"""Converts a bundle's denoiser (unet/ or transformer/model.onnx) to fp16 weights and arithmetic, keeping
float32 inputs and outputs, so the worker feeds it as before. On the WebGPU provider this doubled an
SD-2.1-sized U-Net's speed on an H200 and changed nothing on the tiny bundles, whose calls are latency-bound
(bench/reports/gpu-runtime/README.md). The text encoder, decoder and rewards stay float32.

    python3 models/scripts/denoiser_to_fp16.py BUNDLE_FOLDER [OUT_FOLDER]

Without OUT_FOLDER the bundle is converted in place. Needs the onnx and onnxruntime Python packages
(onnxruntime.transformers.float16). Graphs over 2 GB are saved with external data.

The conversion call is the one bench/device/gpu-runtime.sh ran inline on 2026-11-28 (its fp16 columns);
this command around it was written after that run and has not run on the GPU machine yet (this
development machine has no onnxruntime for Python).
"""
import os
import shutil
import sys

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) == 3 else source
    parts = [p for p in ("unet", "transformer") if os.path.isfile(os.path.join(source, p, "model.onnx"))]
    if not parts:
        sys.exit(f"{source}: no unet/model.onnx or transformer/model.onnx: not a model bundle")
    if target != source:
        shutil.copytree(source, target)
    path = os.path.join(target, parts[0], "model.onnx")
    model = convert_float_to_float16(onnx.load(path), keep_io_types=True)
    large = model.ByteSize() > 2**31 - 1
    onnx.save(model, path, save_as_external_data=large, location="model.onnx_data" if large else None)
    print(f"fp16: {path}")


if __name__ == "__main__":
    main()
