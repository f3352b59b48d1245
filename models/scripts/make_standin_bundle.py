#!/usr/bin/env python3
"""A bundle whose denoiser does Stable Diffusion 2.1's work per call: tiny-sd with the SD-2.1-sized
stand-in U-Net (sd21_unet_standin.py, 865 M parameters, fp16 inside) grafted into its U-Net graph.

    python3 models/scripts/make_standin_bundle.py SOURCE_BUNDLE OUT_BUNDLE [--scale 1e-3]
        [--precision fp16|fp32] [--small]

Why a graft and not the stand-in alone: the stand-in has random weights, so on its own it would
denoise to noise and the scorers would rank noise. The grafted graph computes

    out_sample = tiny_unet(sample, t, context) + scale * pool(standin(upsample(sample), t, project(context)))

so every call pays for a full SD-2.1 U-Net forward pass at 512 px (the tiny latent upsampled to
4x64x64, the 16x64 text context projected and padded to SD 2.1's 77x1024, the output pooled back to
4x8x8), while the samples stay tiny-sd's, nudged by `scale`. The search, the scorers and the answers
are then those of a real bundle, and the time per call is that of a real SD-2.1 denoiser: the model
"with real work per call" of the multi-GPU benchmark (bench/multi-gpu.ts).

The text encoder, decoder, scheduler and scorers are SOURCE_BUNDLE's, copied. The grafted U-Net is
saved with its weights as external data (unet/model.onnx.data). `--small` shrinks the stand-in's
channels tenfold, for checking the graft on a machine without a GPU (it also runs on PyTorch 1.13).
"""
import argparse
import json
import math
import os
import shutil
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd21_unet_standin as standin  # noqa: E402

PREFIX = "sd21_"
SD21_LATENT = 64  # SD 2.1's latent at 512 px


class StandinWork(nn.Module):
    """tiny-sd's denoiser inputs in, the stand-in's output at tiny-sd's latent shape out."""

    def __init__(self, net, dtype, latent_hw, text_hidden, scale):
        super().__init__()
        self.net, self.dtype, self.latent_hw, self.scale = net, dtype, latent_hw, scale
        g = torch.Generator().manual_seed(2)
        self.register_buffer("project", torch.randn(text_hidden, standin.CONTEXT, generator=g) / math.sqrt(text_hidden))

    def forward(self, sample, timestep, encoder_hidden_states):
        b = sample.shape[0]
        x = F.interpolate(sample, size=(SD21_LATENT, SD21_LATENT), mode="nearest").to(self.dtype)
        t = timestep.reshape(1).expand(b)  # tiny-sd's timestep is one scalar for the batch
        context = encoder_hidden_states @ self.project
        context = F.pad(context, (0, 0, 0, standin.TOKENS - encoder_hidden_states.shape[1])).to(self.dtype)
        out = self.net(x, t, context).float()
        return F.avg_pool2d(out, SD21_LATENT // self.latent_hw) * self.scale


def shrink_standin():
    standin.CHANNELS = tuple(c // 10 for c in standin.CHANNELS)
    standin.HEADS = (1, 2, 4, 4)
    standin.TIME_DIM = standin.TIME_DIM // 10


def export_work(path, tiny, precision, scale):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if precision == "fp16" else torch.float32
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in tiny.graph.input}
    latent_hw, tokens, hidden = shapes["sample"][2], shapes["encoder_hidden_states"][1], shapes["encoder_hidden_states"][2]
    net = standin.build(device).to(dtype)
    print(f"stand-in: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters, {precision}, on {device}", flush=True)
    work = StandinWork(net, dtype, latent_hw, hidden, scale).to(device).eval()
    g = torch.Generator().manual_seed(1)
    example = (torch.randn(2, 4, latent_hw, latent_hw, generator=g).to(device), torch.tensor(500.0, device=device),
               torch.randn(2, tokens, hidden, generator=g).to(device))
    with torch.no_grad():
        torch.onnx.export(work, example, path, opset_version=tiny.opset_import[0].version, do_constant_folding=True,
                          input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["work"],
                          dynamic_axes={"sample": {0: "batch"}, "encoder_hidden_states": {0: "batch"}, "work": {0: "batch"}},
                          **({"dynamo": False} if int(torch.__version__.split(".")[0]) >= 2 else {}))  # the classic exporter
        term = float(work(*example).abs().mean())
    print(f"stand-in term: mean |scale * standin| = {term:.3g} on random inputs", flush=True)


def graft(tiny, work):
    """One graph: tiny's nodes, the work graph's nodes (prefixed, reading tiny's inputs), and their sum."""
    inputs = {i.name for i in tiny.graph.input}
    work = onnx.compose.add_prefix(work, PREFIX)
    for node in work.graph.node:
        for k, name in enumerate(node.input):
            if name.startswith(PREFIX) and name[len(PREFIX):] in inputs:
                node.input[k] = name[len(PREFIX):]
    (out,) = [o.name for o in tiny.graph.output]
    for node in tiny.graph.node:
        node.output[:] = ["tiny_" + out if o == out else o for o in node.output]
        node.input[:] = ["tiny_" + out if i == out else i for i in node.input]
    graph = tiny.graph
    graph.node.extend(work.graph.node)
    graph.initializer.extend(work.graph.initializer)
    graph.node.append(onnx.helper.make_node("Add", ["tiny_" + out, work.graph.output[0].name], [out], name="standin_graft_add"))
    tiny.ir_version = max(tiny.ir_version, work.ir_version)
    return tiny


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--scale", type=float, default=1e-3)
    parser.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    parser.add_argument("--small", action="store_true")
    a = parser.parse_args()
    source_unet = os.path.join(a.source, "unet", "model.onnx")
    if not os.path.isfile(source_unet):
        sys.exit(f"{a.source}: no unet/model.onnx: not an SD-family bundle")
    if os.path.exists(a.out):
        sys.exit(f"{a.out}: exists; give a new folder")
    if a.small:
        shrink_standin()
    if not hasattr(F, "scaled_dot_product_attention"):  # PyTorch 1.13: the same attention, written out
        F.scaled_dot_product_attention = lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
    # Built beside the target and renamed into place at the end, so a failed build leaves no bundle.
    final, a.out = a.out, a.out + ".partial"
    shutil.rmtree(a.out, ignore_errors=True)
    shutil.copytree(a.source, a.out)
    tiny = onnx.load(source_unet)
    work_path = os.path.join(a.out, "unet", "standin-work.onnx")
    export_work(work_path, tiny, a.precision, a.scale)
    work = onnx.load(work_path)
    os.remove(work_path)
    for leftover in os.listdir(os.path.join(a.out, "unet")):
        if leftover not in ("config.json", "model.onnx"):
            os.remove(os.path.join(a.out, "unet", leftover))
    merged = graft(tiny, work)
    if merged.ByteSize() < 2**31 - 1:  # the checker serialises the model; past 2 GB only the file can be checked
        onnx.checker.check_model(merged)
    target = os.path.join(a.out, "unet", "model.onnx")
    onnx.save(merged, target, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=1024)
    index_path = os.path.join(a.out, "model_index.json")
    with open(index_path) as f:
        manifest = json.load(f)
    manifest["_evosearch"]["denoiser_standin"] = {
        "what": "tiny-sd's U-Net plus scale x the SD-2.1-sized stand-in (models/scripts/make_standin_bundle.py)",
        "scale": a.scale, "precision": a.precision, "small": a.small,
        "parameters_m": round(sum(int(math.prod(t.dims)) for t in work.graph.initializer) / 1e6, 1),
    }
    with open(index_path, "w") as f:
        json.dump(manifest, f, indent=2)
    size = sum(os.path.getsize(os.path.join(a.out, "unet", f)) for f in os.listdir(os.path.join(a.out, "unet")))
    os.rename(a.out, final)
    print(f"bundle: {final} (unet {size / 2**20:.0f} MiB)", flush=True)


if __name__ == "__main__":
    main()
