"""Retrain the four scorers (image and video; guidance and held-out) with hard negatives and install
them into existing bundles, leaving the generators, the autoencoder and the tokenizer as they are.

    python3 -m models.training.train_scorers --bundles /tmp/bundles --out /tmp/scorers [--scale gpu]

`--bundles` is a folder of bundles in the layout of models/bundles (copy models/bundles there first:
the scorers are replaced in place). Each bundle's rewards/guidance and rewards/held-out ONNX files
are overwritten with the new scorers of its modality, and rewards.json gets their architecture and
held-out figures. `--out` receives scorer-training-report.json: per scorer the training facts, and
for the scorers before and after, on held-out prompts, how often the true prompt beats each
one-attribute change of it (rewards.one_attribute_preference).

Why hard negatives: the in-batch prompts of a contrastive batch almost never share a scene with the
image, so a scorer can meet the InfoNCE loss with a bag of words and still not tell "left of" from
"right of" or two circles from three. Each sample here is trained against H of its own one-attribute
changes at every step (drawn from K per prompt, with a mix of kinds that differs between the
guidance and the held-out scorer), on three times the images of the first bundles, for minutes
instead of seconds.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from . import grammar, rewards, video
from .common import log, pick_device, seed_everything, setup_determinism, write_json
from .tokenizer import WordTokenizer
from .train_all import gen_data

SCALES = {
    # proves the script on a 2-core CPU in a few minutes
    "smoke": dict(n_img=2000, n_vid=200, n_eval=64, n_eval_vid=16, k_neg=6,
                  image=dict(steps=8, batch=64, lr=1e-3, small=True, hard_per_sample=3, blur=0.5),
                  video=dict(steps=4, batch=16, lr=1e-3, small=True, hard_per_sample=3, blur=0.5)),
    # one H200: every scorer stops at its wall-clock budget ("seconds")
    "gpu": dict(n_img=300000, n_vid=60000, n_eval=1024, n_eval_vid=256, k_neg=16,
                image=dict(steps=20000, batch=1024, lr=1.5e-3, hard_per_sample=6, blur=0.5, seconds=95,
                           # the ViT learns relations slower than the CNN (0.60 of relation changes after 95 s)
                           held_out_seconds=130),
                video=dict(steps=20000, batch=512, lr=1.5e-3, hard_per_sample=6, blur=0.5, seconds=80)),
}
ROLES = ("guidance", "held-out")


def _negatives(prompts, k, mix, rng, tok):
    """Per prompt: its canonical id, and k one-attribute changes drawn with `mix` (one draw per
    distinct prompt, shared by its repeats). Changes that fall into the held-out combinations are not
    drawn, so held-out prompts stay unseen in training."""
    cache, pids, negs = {}, [], []
    for p in prompts:
        c = grammar.canonical(p)
        if c not in cache:
            cache[c] = (len(cache), [grammar.perturb(p, rng, mix=mix) for _ in range(k)])
        pids.append(cache[c][0])
        negs.append(cache[c][1])
    return np.array(pids, np.int64), tok([n for ns in negs for n in ns]).reshape(len(prompts), k, -1)


def _onnx_scorer(path, device):
    """A score function over an ONNX scorer (onnxruntime on the CPU), or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def score(x, ids):
        out = sess.run(["scores"], {"images": x.cpu().numpy().astype(np.float32), "input_ids": ids.cpu().numpy()})[0]
        return torch.from_numpy(out).to(device)
    return score


def _bundles_of(folder):
    """name -> (path, 'image' | 'video') for every bundle under folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        index = os.path.join(folder, name, "model_index.json")
        if os.path.isfile(index):
            with open(index) as f:
                family = json.load(f).get("_evosearch", {}).get("family")
            out[name] = (os.path.join(folder, name), "video" if family == "video" else "image")
    if not out:
        raise SystemExit(f"--bundles {folder}: no bundle (a folder with model_index.json) in it")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", required=True, help="bundles to install the scorers into (replaced in place)")
    ap.add_argument("--out", required=True, help="where scorer-training-report.json goes")
    ap.add_argument("--scale", choices=list(SCALES), default="smoke")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=8, help="processes for data generation")
    ap.add_argument("--seconds-mult", type=float, default=1.0, help="scale every scorer's wall-clock budget")
    ap.add_argument("--only", default="", help="comma list of scorers to train (reward-image-guidance, ...; default all)")
    ap.add_argument("--no-before", action="store_true", help="skip measuring the bundles' current scorers")
    args = ap.parse_args(argv)
    S = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SCALES[args.scale].items()}
    for kind in ("image", "video"):
        for key in ("seconds", "held_out_seconds"):
            if key in S[kind]:
                S[kind][key] *= args.seconds_mult
    only = {n for n in args.only.split(",") if n}
    bundles = _bundles_of(args.bundles)
    s = args.seed
    t = time.time()
    # seed offsets 20.., away from train_all's streams, so these are fresh samples of the same world
    img, img_p = gen_data(S["n_img"], "train", "image", s + 20, args.workers)
    vid, vid_p = gen_data(S["n_vid"], "train", "video", s + 20, args.workers)
    from models.world.world import make_dataset
    ho = {"image": make_dataset(S["n_eval"], "heldout", "image", s + 1),
          "video": make_dataset(S["n_eval_vid"], "heldout", "video", s + 1)}
    device = pick_device(args.device)
    setup_determinism(device)
    seed_everything(s)
    tok = WordTokenizer()
    cmd = " ".join([os.path.basename(sys.executable), "-m", "models.training.train_scorers"] + (argv or sys.argv[1:]))
    report = {"command": cmd, "scale": args.scale, "seed": s, "device": str(device),
              "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "config": S, "data_seconds": round(time.time() - t, 2),
              "data": {"train_images": len(img), "train_videos": len(vid),
                       "heldout_images": len(ho["image"][0]), "heldout_videos": len(ho["video"][0])},
              "scorers": {}}
    log("start", **{k: report[k] for k in ("scale", "device", "device_name", "torch", "data")})
    D = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
    data = {"image": (D(img), D(tok(img_p)), img_p, 1), "video": (D(vid), D(tok(vid_p)), vid_p, video.FRAMES)}
    example = {kind: next(name for name, (_, k) in bundles.items() if k == kind)
               for kind in ("image", "video") if any(k == kind for _, k in bundles.values())}
    for kind, (x_u8, ids, prompts, frames) in data.items():
        if kind not in example:
            continue
        ho_u8, ho_p = D(ho[kind][0]), ho[kind][1]
        for j, role in enumerate(ROLES):
            name = f"reward-{kind}-{role}"
            if only and name not in only:
                continue
            cfg = dict(S[kind])
            if role == "held-out" and "held_out_seconds" in cfg:
                cfg["seconds"] = cfg["held_out_seconds"]
            rng = np.random.default_rng(s + 300 + 11 * j + (5 if frames > 1 else 0))
            pids, negs = _negatives(prompts, S["k_neg"], grammar.NEGATIVE_MIXES[role], rng, tok)
            entry = {"negative_mix": grammar.NEGATIVE_MIXES[role], "k_neg": S["k_neg"]}
            old_path = os.path.join(bundles[example[kind]][0], "rewards", role, "model.onnx")
            old = _onnx_scorer(old_path, device) if os.path.isfile(old_path) and not args.no_before else None
            if old is not None:
                entry["before"] = rewards.one_attribute_preference(old, ho_u8, ho_p, tok, device, batch=128)
                log(f"{name}.before", **entry["before"])
            sm, facts = rewards.train(role, x_u8, ids, D(pids), D(negs), len(tok), cfg, device,
                                      s + 500 + 17 * j + (50 if frames > 1 else 0), frames)
            entry.update(facts)
            entry["after"] = rewards.one_attribute_preference(sm, ho_u8, ho_p, tok, device)
            entry["retrieval_heldout"] = rewards.retrieval(sm, ho_u8, ho_p, tok, device, np.random.default_rng(s + 7),
                                                           group=32 if len(ho_p) >= 64 else 16)
            path = os.path.join(args.out, "_parts", name, "model.onnx")
            entry["onnx"] = rewards.export(sm.cpu(), path, frames)
            sm.to(device)
            report["scorers"][name] = entry
            log(f"{name}.done", **{k: v for k, v in entry.items() if k not in ("onnx", "before")})
            for bname, (bpath, bkind) in bundles.items():
                if bkind == kind:
                    _install(bpath, role, path, entry)
    report["total_seconds"] = round(time.time() - t, 1)
    write_json(os.path.join(args.out, "scorer-training-report.json"), report)
    log("done", seconds=report["total_seconds"], report=os.path.join(args.out, "scorer-training-report.json"))


def _install(bundle, role, onnx_path, entry):
    """Copy the scorer into the bundle and record what it is in rewards.json (the entries keep their
    names, paths and inputs, so the worker reads the bundle as before)."""
    import shutil
    dest = os.path.join(bundle, "rewards", role, "model.onnx")
    shutil.copyfile(onnx_path, dest)
    manifest_path = os.path.join(bundle, "rewards.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    for r in manifest["rewards"]:
        if r.get("role") == role and r.get("path") == f"rewards/{role}/model.onnx":
            r["arch"] = entry["arch"]
            r["heldout_retrieval"] = {k: v for k, v in entry["retrieval_heldout"].items()}
            r["heldout_one_attribute_preference"] = {k: entry["after"][k] for k in ("pairwise", "beats_every_change", "by_kind", "images")}
            r["negative_mix"] = entry["negative_mix"]
    write_json(manifest_path, manifest)


if __name__ == "__main__":
    main()
