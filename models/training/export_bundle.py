"""Writes the bundle folders (optimum-like layout) from exported parts.

    <bundle>/model_index.json
    <bundle>/scheduler/scheduler_config.json
    <bundle>/tokenizer/{tokenizer.json, vocab.json, special_tokens_map.json, tokenizer_config.json}
    <bundle>/text_encoder/{model.onnx, config.json}
    <bundle>/unet/{model.onnx, config.json}            (tiny-sd, tiny-sd-large)
    <bundle>/transformer/{model.onnx, config.json}     (tiny-flux, tiny-video)
    <bundle>/vae_decoder/{model.onnx, config.json}, <bundle>/vae_encoder/{model.onnx, config.json}
    <bundle>/rewards.json, <bundle>/rewards/<role>/model.onnx
"""
import os
import shutil

from .common import write_json
from .flow import scheduler_config as flow_scheduler_config

DIFFUSERS_VERSION = "0.30.0"


def ddim_scheduler_config(prediction_type):
    # SD 2.1's DDIM config (no timestep_spacing key, so "leading")
    return {"_class_name": "DDIMScheduler", "_diffusers_version": DIFFUSERS_VERSION,
            "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "num_train_timesteps": 1000, "prediction_type": prediction_type, "clip_sample": False,
            "set_alpha_to_one": False, "steps_offset": 1, "trained_betas": None, "skip_prk_steps": True,
            "rescale_betas_zero_snr": False}


def model_index(family, meta):
    ort = ["diffusers", "OnnxRuntimeModel"]
    idx = {"_diffusers_version": DIFFUSERS_VERSION,
           "text_encoder": ort, "vae_decoder": ort, "vae_encoder": ort,
           "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
           "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False}
    if family == "sd":
        idx.update({"_class_name": "ORTStableDiffusionPipeline", "unet": ort,
                    "scheduler": ["diffusers", "DDIMScheduler"]})
    else:
        idx.update({"_class_name": "ORTFluxPipeline" if family == "flux" else "ORTVideoFlowPipeline",
                    "transformer": ort, "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})
    idx["_evosearch"] = meta
    return idx


def write_bundle(out_dir, name, family, parts, meta, scheduler_cfg, rewards):
    """parts: dict sub-folder -> (path of exported model.onnx, config dict); rewards: list of
    (role, name, onnx path, inputs dict, extra dict). Copies files; returns the bundle folder."""
    b = os.path.join(out_dir, name)
    if os.path.exists(b):
        shutil.rmtree(b)
    os.makedirs(b)
    for sub, (src, cfg) in parts.items():
        if sub == "tokenizer":
            shutil.copytree(src, os.path.join(b, "tokenizer"))
            continue
        os.makedirs(os.path.join(b, sub))
        shutil.copyfile(src, os.path.join(b, sub, "model.onnx"))
        write_json(os.path.join(b, sub, "config.json"), cfg)
    write_json(os.path.join(b, "scheduler", "scheduler_config.json"), scheduler_cfg)
    write_json(os.path.join(b, "model_index.json"), model_index(family, meta))
    write_json(os.path.join(b, "rewards.json"), reward_manifest(b, rewards))
    return b


# What each reward graph input is fed with, in the worker's terms (worker/bundles/reward-manifest.ts).
INPUT_SOURCES = {"images": "image", "input_ids": "prompt_tokens"}


def reward_manifest(b, rewards):
    """rewards.json, version 1, as the worker reads it: each ONNX reward with its graph inputs mapped to
    what feeds them, plus the world's pixel-level composition checker as a held-out metric."""
    entries = []
    for role, rname, src, inputs, extra in rewards:
        rel = f"rewards/{role}/model.onnx"
        os.makedirs(os.path.join(b, "rewards", role), exist_ok=True)
        shutil.copyfile(src, os.path.join(b, rel))
        entries.append(dict({"name": rname, "path": rel, "role": role,
                             "inputs": {name: INPUT_SOURCES[name] for name in inputs},
                             "output": "scores", "embedding": "image_embeds", "graph_inputs": inputs}, **extra))
    entries.append({"name": "composition-checker", "builtin": "composition-checker", "role": "held-out"})
    return {"version": 1, "rewards": entries}


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def check_bundle(path):
    """onnx.checker on every model.onnx under the bundle; returns the list checked."""
    import onnx
    checked = []
    for root, _, files in os.walk(path):
        for f in files:
            if f.endswith(".onnx"):
                p = os.path.join(root, f)
                onnx.checker.check_model(p)
                m = onnx.load(p)
                checked.append({"file": os.path.relpath(p, path),
                                "inputs": [(i.name, _shape(i)) for i in m.graph.input],
                                "outputs": [(o.name, _shape(o)) for o in m.graph.output]})
    return checked


def _shape(v):
    t = v.type.tensor_type
    dims = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
    import onnx
    return [onnx.TensorProto.DataType.Name(t.elem_type), dims]
