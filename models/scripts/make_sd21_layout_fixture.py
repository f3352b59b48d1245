#!/usr/bin/python3
"""Builds TINY random-weight bundles with exactly the layout `optimum-cli export onnx` writes for
Stable Diffusion 2.1 (see /work/shared/reference/onnx-layouts.md), so the TypeScript loader is tested
against the real contract (names, dtypes, ranks, external data, tokenizer files, scheduler config)
without a 5 GB download.

    /usr/bin/python3 models/scripts/make_sd21_layout_fixture.py [out_root]   (default: test/fixtures)

Writes:
  sd21-layout/       the optimum SD 2.1 layout, fp32, dynamic batch, U-Net weights in model.onnx_data,
                     CLIP BPE tokenizer as vocab.json + merges.txt (no tokenizer.json)
  sd21-layout-fp16/  the same parts with float16 graph inputs/outputs (fp32 inside, Cast nodes at the
                     edges, as fp16 exports present themselves to the host), a U-Net with a FIXED batch
                     of 2 (one CFG pair) and a VAE decoder with a fixed batch of 1, plus a rewards.json
  tiny-rewards/      rewards.json + two reward models (a prompt-image score and an image-only score)
  broken-parts/      U-Net graphs that break the contract (a renamed timestep, a rank-3 sample) for the
                     loader's error tests

Runs with Debian's torch 1.13 + onnx 1.12 and the classic torch.onnx.export exporter (opset 14).
Deterministic: the weights come from a fixed torch seed.
"""
import json
import math
import os
import shutil
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper

OPSET = 14
D = 32  # text hidden size (1024 in SD 2.x)
LATENT_C, LATENT_H, LATENT_W = 4, 8, 8  # SD 2.1: 4 x 96 x 96
MAX_LEN = 77

# --- tokenizer ----------------------------------------------------------------------------------------

def bytes_to_unicode():
    """CLIP's (and GPT-2's) reversible byte -> printable unicode map, in vocab order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


# A small, CLIP-style merge table: each merge joins two existing tokens, word-final pieces carry </w>,
# ranks are the line order. Enough to spell the test prompts ("a photo of a cat", "the red car",
# "painting", "hello world", "dog's") through several merge levels.
MERGES = [
    "t h", "i n", "a n", "r e", "o n</w>", "th e</w>", "in g</w>", "a t</w>", "o r", "e r</w>",
    "o f</w>", "c at</w>", "p h", "o t", "ph ot", "phot o</w>", "re d</w>", "c a", "ca r</w>", "d o",
    "do g</w>", "an d</w>", "p a", "pa in", "pain t", "paint ing</w>", "' s</w>", "h e", "l l", "he ll",
    "hell o</w>", "w or", "wor l", "worl d</w>", "s t", "e n", "a l", "i t", "i s</w>", "t o</w>",
    "l e", "i c", "a r", "o u", "e d</w>", "m o", "u n", "a i", "ai n</w>", "mo un", "moun t", "mount ain</w>",
]


def build_vocab():
    b2u = bytes_to_unicode()
    vocab_list = list(b2u.values())
    vocab_list += [v + "</w>" for v in vocab_list]
    merges = []
    have = set(vocab_list)
    for line in MERGES:
        a, b = line.split()
        merged = a + b
        # A merge may only join tokens that exist, and must make a new one (as in CLIP's table).
        if a not in have or b not in have or merged in have:
            raise ValueError(f"inconsistent merge '{line}'")
        merges.append(line)
        vocab_list.append(merged)
        have.add(merged)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


SPECIAL = lambda content: {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_tokenizer(folder, vocab, merges):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    # SD 2.x: special_tokens_map.json pads with "!" (id 0) while tokenizer_config.json still says
    # <|endoftext|>; transformers lets special_tokens_map.json win, so the pipeline pads with id 0.
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": SPECIAL("<|startoftext|>"), "eos_token": SPECIAL("<|endoftext|>"), "pad_token": "!", "unk_token": SPECIAL("<|endoftext|>")}, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({
            "add_prefix_space": False, "bos_token": SPECIAL("<|startoftext|>"), "do_lower_case": True,
            "eos_token": SPECIAL("<|endoftext|>"), "errors": "replace", "model_max_length": MAX_LEN,
            "name_or_path": "stabilityai/stable-diffusion-2-1", "pad_token": "<|endoftext|>",
            "tokenizer_class": "CLIPTokenizer", "unk_token": SPECIAL("<|endoftext|>"),
        }, f, indent=2)


# --- networks -------------------------------------------------------------------------------------------

class TextEncoder(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token = nn.Embedding(vocab_size, D)
        self.position = nn.Parameter(torch.randn(MAX_LEN, D) * 0.02)
        self.mix = nn.Linear(D, D)
        self.norm = nn.LayerNorm(D)

    def forward(self, input_ids):
        h = self.token(input_ids) + self.position[None]
        h = h + torch.tanh(self.mix(h))
        last = self.norm(h)
        # CLIP pools at the end-of-text token, the largest id in the row.
        pooled = last[torch.arange(last.shape[0]), input_ids.argmax(dim=-1)]
        return last, pooled


class UNet(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.hidden = hidden
        self.conv_in = nn.Conv2d(LATENT_C, hidden, 3, padding=1)
        self.time = nn.Linear(hidden, hidden)
        self.context = nn.Linear(D, hidden)
        self.conv_out = nn.Conv2d(hidden, LATENT_C, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        half = self.hidden // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        args = timestep.to(torch.float32) * freqs  # rank-0 timestep broadcasts over the frequencies
        temb = self.time(torch.cat([torch.sin(args), torch.cos(args)]))
        ctx = self.context(encoder_hidden_states.mean(dim=1))
        h = F.silu(self.conv_in(sample) + temb[None, :, None, None] + ctx[:, :, None, None])
        return self.conv_out(h)


class VaeDecoder(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.conv_in = nn.Conv2d(LATENT_C, hidden, 3, padding=1)
        self.up = nn.Upsample(scale_factor=8, mode="nearest")
        self.conv_out = nn.Conv2d(hidden, 3, 3, padding=1)

    def forward(self, latent_sample):
        return torch.tanh(self.conv_out(self.up(F.silu(self.conv_in(latent_sample)))))


class VaeEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2 * LATENT_C, 8, stride=8)

    def forward(self, sample):
        return self.conv(sample)


class PromptImageReward(nn.Module):
    """A stand-in for a CLIP/ImageReward-style score: image features . prompt features, one per image."""

    def __init__(self, vocab_size, dim=16):
        super().__init__()
        self.image = nn.Conv2d(3, dim, 8, stride=8)
        self.token = nn.Embedding(vocab_size, dim)

    def forward(self, pixel_values, input_ids):
        img = self.image(pixel_values).mean(dim=(2, 3))
        txt = self.token(input_ids).mean(dim=1)
        return (F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(dim=-1)


class ImageOnlyReward(nn.Module):
    """A stand-in for an aesthetic head: returns [batch, 1]."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 1)

    def forward(self, images):
        return self.head(images.mean(dim=(2, 3)))


# --- export helpers ---------------------------------------------------------------------------------------

def export(module, args, path, input_names, output_names, dynamic_axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return model


def to_external_data(path, location="model.onnx_data"):
    """optimum writes the U-Net's weights next to the graph (an fp32 U-Net is over 2 GB)."""
    model = onnx.load(path)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=location, size_threshold=0)


def fp16_edges(path, inputs, outputs):
    """Float32 graph inputs/outputs become float16 with Cast nodes at the edges."""
    model = onnx.load(path, load_external_data=True)
    g = model.graph
    head, tail = [], []
    for value in g.input:
        if value.name in inputs and value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = value.name + "_fp32"
            for node in g.node:
                node.input[:] = [inner if x == value.name else x for x in node.input]
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
            head.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT))
    for value in g.output:
        if value.name in outputs and value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = value.name + "_fp32"
            for node in g.node:
                node.output[:] = [inner if x == value.name else x for x in node.output]
                node.input[:] = [inner if x == value.name else x for x in node.input]
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
            tail.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT16))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save_model(model, path)


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


SCHEDULER_SD21 = {
    # stabilityai/stable-diffusion-2-1 scheduler/scheduler_config.json, as published (no timestep_spacing).
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

MODEL_INDEX = {
    "_class_name": "ORTStableDiffusionPipeline",
    "_diffusers_version": "0.29.2",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["diffusers", "OnnxRuntimeModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "OnnxRuntimeModel"],
    "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
    "vae_encoder": ["diffusers", "OnnxRuntimeModel"],
}


def build_bundle(root, vocab, merges, nets, fp16):
    if os.path.exists(root):
        shutil.rmtree(root)
    text_encoder, unet, vae_decoder, vae_encoder = nets
    write_json(os.path.join(root, "model_index.json"), MODEL_INDEX)
    write_json(os.path.join(root, "scheduler", "scheduler_config.json"), SCHEDULER_SD21)
    write_tokenizer(os.path.join(root, "tokenizer"), vocab, merges)

    ids = torch.zeros(2, MAX_LEN, dtype=torch.int64)
    export(text_encoder, (ids,), os.path.join(root, "text_encoder", "model.onnx"), ["input_ids"],
           ["last_hidden_state", "pooler_output"],
           {"input_ids": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}, "pooler_output": {0: "batch_size"}})
    write_json(os.path.join(root, "text_encoder", "config.json"), {
        "architectures": ["CLIPTextModel"], "hidden_size": D, "max_position_embeddings": MAX_LEN,
        "vocab_size": len(vocab), "model_type": "clip_text_model", "torch_dtype": "float16" if fp16 else "float32"})

    sample = torch.randn(2, LATENT_C, LATENT_H, LATENT_W)
    timestep = torch.tensor(981.0)  # rank 0, as optimum exports it
    ehs = torch.randn(2, MAX_LEN, D)
    unet_path = os.path.join(root, "unet", "model.onnx")
    unet_axes = {} if fp16 else {"sample": {0: "batch_size", 2: "height", 3: "width"},
                                 "encoder_hidden_states": {0: "batch_size"},
                                 "out_sample": {0: "batch_size", 2: "height", 3: "width"}}
    export(unet, (sample, timestep, ehs), unet_path, ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], unet_axes)
    write_json(os.path.join(root, "unet", "config.json"), {
        "_class_name": "UNet2DConditionModel", "in_channels": LATENT_C, "out_channels": LATENT_C,
        "sample_size": LATENT_H, "cross_attention_dim": D, "prediction_type": "v_prediction"})

    latent = torch.randn(1, LATENT_C, LATENT_H, LATENT_W)
    dec_axes = {} if fp16 else {"latent_sample": {0: "batch_size", 2: "height", 3: "width"},
                                "sample": {0: "batch_size", 2: "height_out", 3: "width_out"}}
    export(vae_decoder, (latent,), os.path.join(root, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"], dec_axes)
    vae_config = {"_class_name": "AutoencoderKL", "latent_channels": LATENT_C, "sample_size": 8 * LATENT_H,
                  "scaling_factor": 0.18215, "in_channels": 3, "out_channels": 3}
    write_json(os.path.join(root, "vae_decoder", "config.json"), vae_config)

    image = torch.randn(1, 3, 8 * LATENT_H, 8 * LATENT_W)
    export(vae_encoder, (image,), os.path.join(root, "vae_encoder", "model.onnx"), ["sample"], ["latent_parameters"],
           {"sample": {0: "batch_size", 2: "height", 3: "width"}, "latent_parameters": {0: "batch_size", 2: "height_latent", 3: "width_latent"}})
    write_json(os.path.join(root, "vae_encoder", "config.json"), vae_config)

    if fp16:
        fp16_edges(os.path.join(root, "text_encoder", "model.onnx"), [], ["last_hidden_state", "pooler_output"])
        fp16_edges(unet_path, ["sample", "timestep", "encoder_hidden_states"], ["out_sample"])
        fp16_edges(os.path.join(root, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"])
    to_external_data(unet_path)


def build_rewards(root, vocab_size, name_prefix=""):
    os.makedirs(root, exist_ok=True)
    image = torch.rand(2, 3, 8 * LATENT_H, 8 * LATENT_W)
    ids = torch.zeros(2, MAX_LEN, dtype=torch.int64)
    export(PromptImageReward(vocab_size), (image, ids), os.path.join(root, "prompt_image_score.onnx"),
           ["pixel_values", "input_ids"], ["scores"], {"pixel_values": {0: "batch"}, "input_ids": {0: "batch"}, "scores": {0: "batch"}})
    export(ImageOnlyReward(), (image,), os.path.join(root, "image_score.onnx"), ["images"], ["score"],
           {"images": {0: "batch"}, "score": {0: "batch"}})
    return {
        "version": 1,
        "rewards": [
            {"name": "prompt-image-score", "path": name_prefix + "prompt_image_score.onnx", "role": "guidance",
             "inputs": {"pixel_values": "image", "input_ids": "prompt_tokens"}, "output": "scores",
             "image": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}},
            {"name": "image-score", "path": name_prefix + "image_score.onnx", "role": "held-out",
             "inputs": {"images": "image"}},
        ],
    }


def identity_unet(path, timestep_name="timestep", sample_dims=("batch_size", LATENT_C, "height", "width")):
    """A U-Net stand-in whose IO breaks the contract on purpose (the loader must name what is wrong)."""
    float_input = lambda name, dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["sample"], ["out_sample"])], "broken_unet",
        [float_input("sample", sample_dims), float_input(timestep_name, []), float_input("encoder_hidden_states", ("batch_size", MAX_LEN, D))],
        [float_input("out_sample", sample_dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save_model(model, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "test", "fixtures")
    torch.manual_seed(20250517)
    vocab, merges = build_vocab()
    nets = (TextEncoder(len(vocab)), UNet(), VaeDecoder(), VaeEncoder())
    for net in nets:
        for p in net.parameters():
            p.data.mul_(0.5)  # small outputs keep the tiny sampler runs tame

    build_bundle(os.path.join(out_root, "sd21-layout"), vocab, merges, nets, fp16=False)
    build_bundle(os.path.join(out_root, "sd21-layout-fp16"), vocab, merges, nets, fp16=True)

    rewards_root = os.path.join(out_root, "tiny-rewards")
    if os.path.exists(rewards_root):
        shutil.rmtree(rewards_root)
    write_json(os.path.join(rewards_root, "rewards.json"), build_rewards(rewards_root, len(vocab)))
    # The fp16 bundle carries its own manifest (the in-bundle form: rewards.json beside model_index.json).
    fp16_root = os.path.join(out_root, "sd21-layout-fp16")
    write_json(os.path.join(fp16_root, "rewards.json"), build_rewards(os.path.join(fp16_root, "rewards"), len(vocab), "rewards/"))
    broken = os.path.join(out_root, "broken-parts")
    if os.path.exists(broken):
        shutil.rmtree(broken)
    identity_unet(os.path.join(broken, "unet-timestep-renamed.onnx"), timestep_name="t_emb")
    identity_unet(os.path.join(broken, "unet-sample-rank3.onnx"), sample_dims=("batch_size", LATENT_C, "hw"))
    print(f"vocab {len(vocab)} tokens, {len(merges)} merges; wrote {out_root}")


if __name__ == "__main__":
    main()
