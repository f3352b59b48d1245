#!/usr/bin/env python3
"""A Stable-Diffusion-2.1-sized U-Net with random weights: the architecture and shapes of SD 2.1's
UNet2DConditionModel (block channels 320/640/1280/1280, two ResNet blocks per level, linear-projection
transformer blocks with 64-wide heads, cross-attention to a 1024-wide text context of 77 tokens, 865 M
parameters), written out here so no diffusers download is needed. For the GPU benchmark (bench/gpu-runtime.ts):

    python3 models/scripts/sd21_unet_standin.py export OUT_DIR [--latent 64]
        OUT_DIR/fp32/model.onnx (+ external data) and OUT_DIR/fp16/model.onnx: fp16 weights and
        arithmetic with float32 inputs and output (Cast at the edges), so one host feeds both alike.
        Inputs: sample [B,4,H,W], timestep [B], encoder_hidden_states [B,77,1024]; output out_sample.
    python3 models/scripts/sd21_unet_standin.py torch-bench OUT.json [--batches 1,2,4,8] [--latent 64]
        the same network in PyTorch on CUDA, fp32 (TF32 off), TF32 and fp16: latent forward passes
        per second at each batch size (CUDA events, 3 warm-ups, 10 timed calls): the physical reference.

Needs PyTorch >= 2 (scaled_dot_product_attention; the classic exporter, dynamo=False). Weights come from
torch.manual_seed(0), so every export of the same script is the same graph.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNELS = (320, 640, 1280, 1280)
HEADS = (5, 10, 20, 20)  # SD 2.1: attention_head_dim [5, 10, 20, 20], i.e. 64-wide heads
CONTEXT, TOKENS = 1024, 77
TIME_DIM = 1280


def norm(c):
    return nn.GroupNorm(32, c, eps=1e-5)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(TIME_DIM, cout)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Attention(nn.Module):
    def __init__(self, dim, heads, context_dim=None):
        super().__init__()
        self.heads = heads
        kv = context_dim or dim
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim, bias=False), nn.Linear(kv, dim, bias=False), nn.Linear(kv, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, context=None):
        context = x if context is None else context
        b, n, d = x.shape
        split = lambda t: t.reshape(b, -1, self.heads, d // self.heads).transpose(1, 2)
        h = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context)))
        return self.to_out(h.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Transformer2DModel with use_linear_projection and one BasicTransformerBlock (GEGLU feed-forward)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.norm, self.proj_in, self.proj_out = norm(dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, heads, CONTEXT)
        self.norm3, self.ff_in, self.ff_out = nn.LayerNorm(dim), nn.Linear(dim, 8 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x, context):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(b, hh * ww, c))
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), context)
        a, gate = self.ff_in(self.norm3(h)).chunk(2, dim=-1)
        h = h + self.ff_out(a * F.gelu(gate))
        return x + self.proj_out(h).reshape(b, hh, ww, c).permute(0, 3, 1, 2)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        c0 = CHANNELS[0]
        self.time_1, self.time_2 = nn.Linear(c0, TIME_DIM), nn.Linear(TIME_DIM, TIME_DIM)
        self.conv_in = nn.Conv2d(4, c0, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cin = [c0], c0
        for level, (cout, heads) in enumerate(zip(CHANNELS, HEADS)):
            attend = level < 3
            layers = nn.ModuleList()
            for j in range(2):
                layers.append(nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout)] + ([TransformerBlock(cout, heads)] if attend else [])))
                skips.append(cout)
            sample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if level < 3 else None
            if sample is not None:
                skips.append(cout)
            self.down.append(nn.ModuleDict({"layers": layers, **({"downsample": sample} if sample is not None else {})}))
            cin = cout
        top = CHANNELS[-1]
        self.mid_res1, self.mid_attn, self.mid_res2 = ResnetBlock(top, top), TransformerBlock(top, HEADS[-1]), ResnetBlock(top, top)
        self.up = nn.ModuleList()
        reversed_channels, reversed_heads = CHANNELS[::-1], HEADS[::-1]
        previous = top
        for level, (cout, heads) in enumerate(zip(reversed_channels, reversed_heads)):
            attend = level > 0
            layers = nn.ModuleList()
            for j in range(3):
                skip = skips.pop()
                layers.append(nn.ModuleList([ResnetBlock((previous if j == 0 else cout) + skip, cout)] + ([TransformerBlock(cout, heads)] if attend else [])))
            block = {"layers": layers}
            if level < 3:
                block["upsample"] = nn.Conv2d(cout, cout, 3, padding=1)
            self.up.append(nn.ModuleDict(block))
            previous = cout
        self.norm_out, self.conv_out = norm(c0), nn.Conv2d(c0, 4, 3, padding=1)

    def time_embedding(self, t):
        half = CHANNELS[0] // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.time_1.weight.dtype)  # flip_sin_to_cos
        return self.time_2(F.silu(self.time_1(emb)))

    def forward(self, sample, timestep, context):
        temb = self.time_embedding(timestep)
        h = self.conv_in(sample)
        skips = [h]
        for block in self.down:
            for layer in block["layers"]:
                h = layer[0](h, temb)
                if len(layer) > 1:
                    h = layer[1](h, context)
                skips.append(h)
            if "downsample" in block:
                h = block["downsample"](h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, temb), context), temb)
        for block in self.up:
            for layer in block["layers"]:
                h = layer[0](torch.cat([h, skips.pop()], dim=1), temb)
                if len(layer) > 1:
                    h = layer[1](h, context)
            if "upsample" in block:
                h = block["upsample"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class Float32Edges(nn.Module):
    """The network in another dtype behind float32 inputs and output."""

    def __init__(self, net, dtype):
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.net(sample.to(self.dtype), timestep, encoder_hidden_states.to(self.dtype)).float()


def build(device):
    torch.manual_seed(0)
    net = UNet().to(device).eval()
    # Random weights at a scale that keeps activations finite through 25 layers (default init grows them).
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(0.5)
    return net


def inputs(batch, latent, device, dtype=torch.float32):
    g = torch.Generator(device="cpu").manual_seed(1)
    return (torch.randn(batch, 4, latent, latent, generator=g).to(device, dtype),
            torch.full((batch,), 500.0, device=device),
            torch.randn(batch, TOKENS, CONTEXT, generator=g).to(device, dtype))


def export(out_dir, latent):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = build(device)
    print(f"parameters: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M", flush=True)
    names = dict(input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["out_sample"],
                 dynamic_axes={"sample": {0: "batch"}, "timestep": {0: "batch"}, "encoder_hidden_states": {0: "batch"}, "out_sample": {0: "batch"}})
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        folder = os.path.join(out_dir, precision)
        os.makedirs(folder, exist_ok=True)
        model = Float32Edges(net.to(dtype), dtype).eval()
        started = time.time()
        with torch.no_grad():
            torch.onnx.export(model, inputs(1, latent, device), os.path.join(folder, "model.onnx"), opset_version=17, dynamo=False, **names)
        print(f"exported {precision} in {time.time() - started:.0f} s: {sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 2**20:.0f} MiB", flush=True)


def torch_bench(out_json, batches, latent):
    assert torch.cuda.is_available(), "torch-bench needs CUDA"
    net = build("cuda")
    rows = []
    for mode in ("fp32", "tf32", "fp16"):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        dtype = torch.float16 if mode == "fp16" else torch.float32
        model = net.to(dtype)
        for batch in batches:
            x, t, ctx = inputs(batch, latent, "cuda", dtype)
            with torch.no_grad():
                for _ in range(3):
                    model(x, t, ctx)
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(10):
                    out = model(x, t, ctx)
                end.record()
                torch.cuda.synchronize()
            ms = start.elapsed_time(end) / 10
            finite = bool(torch.isfinite(out).all())
            rows.append({"runtime": "pytorch", "precision": mode, "batch": batch, "ms_per_call": ms, "latents_per_second": batch / (ms / 1000), "finite": finite})
            print(json.dumps(rows[-1]), flush=True)
    with open(out_json, "w") as f:
        json.dump({"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "latent": latent, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["export", "torch-bench"])
    parser.add_argument("out")
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--batches", default="1,2,4,8")
    a = parser.parse_args()
    if a.command == "export":
        export(a.out, a.latent)
    else:
        torch_bench(a.out, [int(b) for b in a.batches.split(",")], a.latent)
