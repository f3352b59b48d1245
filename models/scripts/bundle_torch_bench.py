#!/usr/bin/env python3
"""The shipped bundles' denoisers in PyTorch on CUDA, as the physical reference for bench/gpu-runtime.ts:
the same architecture as each bundle's ONNX graph (models/training's UNet, built from the bundle's
config.json, random weights: time does not depend on them), fp32 (TF32 off), TF32 and fp16 (autocast), graph calls
per second at each batch size (CUDA events, 5 warm-ups, the mean of 20 calls).

    python3 models/scripts/bundle_torch_bench.py OUT.json [--bundles tiny-sd,tiny-flux,tiny-video] [--batches 1,4,16,64]

Run from the project root (it imports models.training).
"""
import argparse
import contextlib
import json
import os
import sys

import torch

sys.path.insert(0, os.getcwd())
from models.training.unet import ExportUNet, UNet  # noqa: E402
from models.training.video import ExportVideo, VideoUNet  # noqa: E402


def build(folder):
    part = "unet" if os.path.isdir(os.path.join(folder, "unet")) else "transformer"
    cfg = json.load(open(os.path.join(folder, part, "config.json")))
    ch, ctx, heads, frames = tuple(cfg["block_out_channels"]), cfg["cross_attention_dim"], cfg["attention_heads"], cfg.get("num_frames")
    torch.manual_seed(0)
    if frames:
        return ExportVideo(VideoUNet(ch, ctx, heads, frames=frames)), (frames, 4, cfg["sample_size"], cfg["sample_size"]), ctx
    return ExportUNet(UNet(ch, ctx, heads)), (4, cfg["sample_size"], cfg["sample_size"]), ctx


def time_calls(model, batch, shape, ctx, half, device):
    x = torch.randn(batch, *shape, device=device)
    t = torch.tensor(500.0, device=device)
    c = torch.randn(batch, 16, ctx, device=device)
    # fp16 by autocast: the modules mix float32 (timestep embedding) and the weights' dtype.
    with torch.no_grad(), (torch.autocast(device, dtype=torch.float16) if half else contextlib.nullcontext()):
        for _ in range(5):
            model(x, t, c)
        if device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(20):
                model(x, t, c)
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 20
        import time
        started = time.perf_counter()
        for _ in range(20):
            model(x, t, c)
        return (time.perf_counter() - started) * 1000 / 20


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--bundles", default="tiny-sd,tiny-flux,tiny-video")
    p.add_argument("--batches", default="1,4,16,64")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in a.bundles.split(","):
        net, shape, ctx = build(os.path.join("models", "bundles", name))
        net = net.to(device).eval()
        for mode in ("fp32", "tf32", "fp16") if device == "cuda" else ("fp32",):
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            torch.backends.cudnn.allow_tf32 = mode == "tf32"
            for batch in [int(b) for b in a.batches.split(",")]:
                ms = time_calls(net, batch, shape, ctx, mode == "fp16", device)
                rows.append({"runtime": "pytorch", "bundle": name, "precision": mode, "batch": batch, "ms_per_call": ms, "latents_per_second": batch / (ms / 1000)})
                print(json.dumps(rows[-1]), flush=True)
    with open(a.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
