#!/usr/bin/env python3
"""Rewrites a float32 U-Net ONNX graph for onnxruntime's CUDA provider with onnxruntime's own transformer
optimizer (onnxruntime.transformers.optimizer, model type "unet"): attention as one fused
MultiHeadAttention node (flash / memory-efficient attention kernels instead of a materialised
[tokens x tokens] score matrix), GroupNorm + SiLU as one GroupNorm node, BiasSplitGelu, BiasAdd, and
optionally NHWC convolutions; then fp16 weights and arithmetic with float32 inputs and output, so the
worker feeds it as before. The fused nodes are contrib ops that only the CUDA provider runs.

    python3 models/scripts/optimize_for_cuda.py IN.onnx OUT.onnx [--no-fp16] [--nhwc] [--no-group-norm]

For the SD-2.1-sized stand-in (models/scripts/sd21_unet_standin.py) on the GPU machine:
    python3 models/scripts/optimize_for_cuda.py /tmp/sd21/fp32/model.onnx /tmp/sd21/opt-fp16/model.onnx
Needs the onnx and onnxruntime Python packages (CPU onnxruntime is enough: the graph rewrite is offline,
opt_level 0). Weights are saved as external data next to OUT.onnx.
"""
import argparse
import os
import sys
import time

import numpy as np
from onnxruntime.transformers import fusion_attention_unet
from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.transformers.optimizer import optimize_model

_get_num_heads = fusion_attention_unet.FusionAttentionUnet.get_num_heads


def get_num_heads(self, reshape_q, is_torch2=False):
    """The head count of a PyTorch 2 export's Q reshape ([0, 0, heads, head_size] built by a Concat).
    onnxruntime 1.30's own version calls int() on a one-element array, which NumPy 2 refuses
    ("only 0-dimensional arrays can be converted to Python scalars"), so no attention fused at all."""
    if not is_torch2:
        return _get_num_heads(self, reshape_q, is_torch2)
    parent = self.model.get_parent(reshape_q, 1)
    if parent is None or parent.op_type != "Concat" or len(parent.input) != 4:
        return 0
    value = self.model.get_constant_value(parent.input[2])
    if value is None or np.asarray(value).size != 1:
        return 0
    heads = int(np.asarray(value).reshape(-1)[0])
    return heads if heads > 0 else 0


# onnxruntime.transformers imports its modules by bare name too (it puts its folder on sys.path), so the
# class exists twice: patch both.
for name in ("fusion_attention_unet", "onnxruntime.transformers.fusion_attention_unet"):
    if name in sys.modules:
        sys.modules[name].FusionAttentionUnet.get_num_heads = get_num_heads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--no-fp16", action="store_true")
    parser.add_argument("--nhwc", action="store_true", help="NhwcConv for the convolutions (Transpose pairs around them)")
    parser.add_argument("--no-group-norm", action="store_true")
    args = parser.parse_args()
    started = time.time()
    options = FusionOptions("unet")
    # Packed QKV/KV layouts are what the CUDA kernels of MultiHeadAttention read fastest. Options are set
    # only where this onnxruntime version has them (the set grew between releases).
    wanted = {
        "enable_nhwc_conv": args.nhwc,
        "enable_group_norm": not args.no_group_norm,
        "enable_skip_group_norm": not args.no_group_norm,
        "enable_packed_qkv": True,
        "enable_packed_kv": True,
        "enable_bias_add": True,
        "enable_bias_splitgelu": True,
    }
    for name, value in wanted.items():
        if hasattr(options, name):
            setattr(options, name, value)
        else:
            print(f"note: this onnxruntime has no fusion option {name}")
    model = optimize_model(args.input, model_type="unet", num_heads=0, hidden_size=0, opt_level=0, optimization_options=options, use_gpu=True)
    fused = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
    if not args.no_fp16:
        model.convert_float_to_float16(keep_io_types=True, op_block_list=["RandomNormalLike", "Resize"])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    # Always external data: the fp32 graph is over protobuf's 2 GB, and the fp16 one close to it.
    model.save_model_to_file(args.output, use_external_data_format=True)
    print(f"optimized {args.input} -> {args.output} in {time.time() - started:.0f} s; fused: {fused}")


if __name__ == "__main__":
    main()
