"""Train every tiny model of the procedural world and write the ONNX bundles.

    /usr/bin/python3 -m models.training.train_all --scale smoke --out /tmp/bundles-smoke   # CPU, minutes
    python3 -m models.training.train_all --scale full --out /tmp/bundles                    # one H100

Bundles: tiny-sd (small U-Net, epsilon), tiny-sd-large (4x U-Net), tiny-flux (rectified flow),
tiny-video (video rectified flow); each with tokenizer, text encoder, VAE, scheduler and reward
models (rewards.json). Progress and metrics go to stdout as JSON lines; <out>/training-report.json
holds the figures per model."""
import argparse
import os
import platform
import shutil
import sys
import time

import numpy as np
import torch

from . import autoencoder, export_bundle, flow, grammar, rewards, text_encoder, unet, video
from .common import log, n_params, pick_device, seed_everything, setup_determinism, write_json
from .tokenizer import WordTokenizer, verify_with_hf

SCALES = {
    "smoke": dict(
        n_img=2000, n_vid=256, n_eval=24, n_eval_vid=8, n_ret=128, k_neg=2,
        ae=dict(ch=8, steps=150, batch=64, lr=2e-3, kl=1e-4),
        text=dict(dim=32, layers=1, heads=2),
        sd=dict(ch=(16, 32), steps=50, batch=32, lr=1e-3),
        sd_large=dict(ch=(32, 64), steps=30, batch=32, lr=1e-3),
        flux=dict(ch=(16, 32), steps=50, batch=32, lr=1e-3),
        video=dict(ch=(16, 32), steps=20, batch=4, lr=1e-3),
        reward=dict(steps=60, batch=64, lr=1e-3, small=True),
        reward_video=dict(steps=30, batch=16, lr=1e-3, small=True),
        sample_steps=8, video_sample_steps=6),
    # The shipped bundles of 2026-11-25 were trained at this scale on a 2-core CPU (the GPU time went to
    # a full-scale run whose outputs stayed on the device); each model stops at its wall-clock budget.
    "cpu": dict(
        n_img=20000, n_vid=2000, n_eval=64, n_eval_vid=16, n_ret=256, k_neg=3,
        ae=dict(ch=24, steps=3000, batch=128, lr=1.5e-3, kl=1e-4, seconds=240),
        text=dict(dim=64, layers=2, heads=4),
        sd=dict(ch=(32, 64), steps=6000, batch=128, lr=1e-3, seconds=420),
        sd_large=dict(ch=(64, 128), steps=6000, batch=128, lr=8e-4, seconds=540),
        flux=dict(ch=(32, 64), steps=6000, batch=128, lr=1e-3, seconds=420),
        video=dict(ch=(32, 64), steps=4000, batch=16, lr=1e-3, seconds=360),
        reward=dict(steps=3000, batch=256, lr=1.5e-3, seconds=120),
        reward_video=dict(steps=2000, batch=64, lr=1.5e-3, seconds=90),
        sample_steps=25, video_sample_steps=20),
    # The shipped bundles: the "cpu" architecture (same file sizes and CPU inference cost, so the default
    # run stays under a minute on 2 cores) trained on one GPU with the full data and batch sizes.
    "gpu": dict(
        n_img=100000, n_vid=20000, n_eval=256, n_eval_vid=128, n_ret=1024, k_neg=3,
        ae=dict(ch=24, steps=4000, batch=512, lr=1e-3, kl=1e-4, seconds=55),
        text=dict(dim=64, layers=2, heads=4),
        sd=dict(ch=(32, 64), steps=12000, batch=2048, lr=1e-3, seconds=65),
        sd_large=dict(ch=(64, 128), steps=12000, batch=2048, lr=8e-4, seconds=75),
        flux=dict(ch=(32, 64), steps=12000, batch=2048, lr=1e-3, seconds=65),
        video=dict(ch=(32, 64), steps=8000, batch=256, lr=1e-3, seconds=55),
        reward=dict(steps=3000, batch=1024, lr=1.5e-3, seconds=16),
        reward_video=dict(steps=2000, batch=512, lr=1.5e-3, seconds=14),
        sample_steps=25, video_sample_steps=20),
    "full": dict(  # "seconds": wall-clock budget per model (see --no-time-budget); tuned on one H100,
        # where these small nets are bound by per-op overhead (the step time hardly grows with the batch)
        n_img=100000, n_vid=20000, n_eval=256, n_eval_vid=128, n_ret=1024, k_neg=3,
        ae=dict(ch=32, steps=4000, batch=512, lr=1e-3, kl=1e-4, seconds=60),
        text=dict(dim=128, layers=2, heads=4),
        sd=dict(ch=(48, 96), steps=8000, batch=2048, lr=1e-3, seconds=60),
        sd_large=dict(ch=(96, 192), steps=8000, batch=2048, lr=8e-4, seconds=75),
        flux=dict(ch=(48, 96), steps=8000, batch=2048, lr=1e-3, seconds=60),
        video=dict(ch=(48, 96), steps=5000, batch=256, lr=1e-3, seconds=55),
        reward=dict(steps=3000, batch=1024, lr=1.5e-3, seconds=16),
        reward_video=dict(steps=2000, batch=512, lr=1.5e-3, seconds=14),
        sample_steps=50, video_sample_steps=30),
}
GUIDANCE = {"tiny-sd": 5.0, "tiny-sd-large": 5.0, "tiny-flux": 4.0, "tiny-video": 4.0}
FLUX_SHIFT, VIDEO_SHIFT = 1.0, 3.0


def _chunk(a):
    from models.world.world import make_dataset
    return make_dataset(*a)


def gen_data(n, split, kind, seed, workers):
    """make_dataset in 8 fixed chunks (seeds 10000 + 100 * seed + chunk, disjoint from the evaluation
    streams), so the data do not depend on the number of worker processes."""
    chunks = 8
    sizes = [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]
    jobs = [(m, split, kind, 10000 + 100 * seed + i) for i, m in enumerate(sizes) if m > 0]
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            res = pool.map(_chunk, jobs)
    else:
        res = [_chunk(j) for j in jobs]
    return np.concatenate([r[0] for r in res]), [p for r in res for p in r[1]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), default="smoke")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps-mult", type=float, default=1.0,
                    help="multiply every training step count (e.g. 0.25 for a quick timing run)")
    ap.add_argument("--no-time-budget", action="store_true",
                    help="train exactly the configured step counts (full scale otherwise shortens each model "
                         "to its wall-clock budget, measured after warm-up)")
    ap.add_argument("--workers", type=int, default=8, help="processes for data generation")
    ap.add_argument("--models", default="sd,sd-large,flux,video",
                    help="comma list of generators to train (the autoencoder and rewards always are)")
    args = ap.parse_args(argv)
    S = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SCALES[args.scale].items()}
    for v in S.values():
        if isinstance(v, dict) and "steps" in v:
            v["steps"] = max(1, int(round(v["steps"] * args.steps_mult)))
            if args.no_time_budget:
                v.pop("seconds", None)
    which = set(args.models.split(","))
    # data first: generated in worker processes (forked before any CUDA use)
    t = time.time()
    s = args.seed
    img, img_p = gen_data(S["n_img"], "train", "image", s, args.workers)
    vid, vid_p = gen_data(S["n_vid"], "train", "video", s, args.workers)
    from models.world.world import make_dataset
    ho_img, ho_img_p = make_dataset(max(S["n_ret"], S["n_eval"]), "heldout", "image", s + 1)
    ho_vid, ho_vid_p = make_dataset(max(S["n_ret"] // 4, S["n_eval_vid"]), "heldout", "video", s + 1)
    ev_img, ev_img_p = make_dataset(S["n_eval"], "train", "image", s + 2)  # fresh train-distribution prompts
    ev_vid, ev_vid_p = make_dataset(S["n_eval_vid"], "train", "video", s + 2)
    device = pick_device(args.device)
    setup_determinism(device)
    seed_everything(args.seed)
    T0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    parts = os.path.join(args.out, "_parts")
    if os.path.exists(parts):
        shutil.rmtree(parts)
    cmd = " ".join([os.path.basename(sys.executable), "-m", "models.training.train_all"] + (argv or sys.argv[1:]))
    report = {"command": cmd, "scale": args.scale, "seed": args.seed, "device": str(device),
              "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "python": platform.python_version(), "config": S, "models": {}}
    log("start", **{k: report[k] for k in ("scale", "device", "device_name", "torch")})

    # ------------------------------------------------------------------ data (generated once)
    tok = WordTokenizer()
    tok_dir = os.path.join(parts, "tokenizer")
    tok.save(tok_dir)
    tok_note = verify_with_hf(tok_dir, img_p[:200] + vid_p[:50] + ho_img_p[:50] + [""], tok)
    rng = np.random.default_rng(s + 3)
    img_ids, vid_ids = tok(img_p), tok(vid_p)

    def pid_and_negs(prompts):
        cache, pids, negs = {}, [], []
        for p in prompts:
            c = grammar.canonical(p)
            if c not in cache:
                cache[c] = (len(cache), [grammar.perturb(p, rng) for _ in range(S["k_neg"])])
            pids.append(cache[c][0])
            negs.append(cache[c][1])
        return np.array(pids, np.int64), tok([n for ns in negs for n in ns]).reshape(len(prompts), S["k_neg"], -1)

    img_pid, img_neg = pid_and_negs(img_p)
    vid_pid, vid_neg = pid_and_negs(vid_p)
    D = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
    img_t, vid_t = D(img), D(vid)
    img_ids_t, vid_ids_t = D(img_ids), D(vid_ids)
    empty = torch.from_numpy(tok([""])[0])
    data_info = {"train_images": len(img), "train_videos": len(vid), "unique_train_image_prompts": int(img_pid.max() + 1),
                 "unique_train_video_prompts": int(vid_pid.max() + 1), "heldout_images": len(ho_img),
                 "heldout_videos": len(ho_vid), "eval_prompts_image": S["n_eval"], "eval_prompts_video": S["n_eval_vid"],
                 "seconds": round(time.time() - t, 2), "tokenizer_check": tok_note, "vocab_size": len(tok)}
    report["data"] = data_info
    log("data", **data_info)

    # ------------------------------------------------------------------ autoencoder
    ae, m = autoencoder.train(img_t, S["ae"], device, s + 10)
    m["psnr_train_db"] = autoencoder.psnr(ae, img_t[:2048], device)
    m["psnr_heldout_db"] = autoencoder.psnr(ae, D(ho_img), device)
    m["psnr_video_frames_db"] = autoencoder.psnr(ae, vid_t[:256].reshape(-1, 32, 32, 3), device)
    rec = autoencoder.decode_u8(ae, autoencoder.encode_all(ae, D(ho_img[:S["n_eval"]]), device))
    m["checker_on_reconstructions_heldout"] = grammar.check_batch(ho_img_p[:S["n_eval"]], rec)
    m["checker_on_ground_truth_heldout"] = grammar.check_batch(ho_img_p[:S["n_eval"]], ho_img[:S["n_eval"]])
    ae_files = autoencoder.export(ae.cpu(), parts)
    ae.to(device)
    m["onnx"] = ae_files
    report["models"]["autoencoder"] = m
    log("autoencoder.done", **{k: v for k, v in m.items() if k != "onnx"})
    lat = autoencoder.encode_all(ae, img_t, device)
    vlat = autoencoder.encode_all(ae, vid_t.reshape(-1, 32, 32, 3), device).reshape(len(vid), video.FRAMES, 4, 8, 8)
    log("latents", image_std=float(lat.std()), video_std=float(vlat.std()))

    # ------------------------------------------------------------------ reward scorers
    scorers = {}
    for kind, data, ids, pids, negs, frames, rc, ho, ho_p in [
            ("image", img_t, img_ids_t, img_pid, img_neg, 1, S["reward"], ho_img, ho_img_p),
            ("video", vid_t, vid_ids_t, vid_pid, vid_neg, video.FRAMES, S["reward_video"], ho_vid, ho_vid_p)]:
        for j, role in enumerate(["guidance", "held-out"]):
            sm, m = rewards.train(role, data, ids, D(pids), D(negs), len(tok), rc, device,
                                  s + 100 + 17 * j + (50 if frames > 1 else 0), frames)
            n_ret = S["n_ret"] if frames == 1 else S["n_ret"] // 4
            m["retrieval_heldout"] = rewards.retrieval(sm, D(ho[:n_ret]), ho_p[:n_ret], tok, device,
                                                       np.random.default_rng(s + 7))
            m["retrieval_train_prompts"] = rewards.retrieval(
                sm, D((ev_img if frames == 1 else ev_vid)), ev_img_p if frames == 1 else ev_vid_p, tok, device,
                np.random.default_rng(s + 8), group=min(32, S["n_eval_vid"] if frames > 1 else 32))
            path = os.path.join(parts, f"reward-{kind}-{role}", "model.onnx")
            m["onnx"] = rewards.export(sm.cpu(), path, frames)
            sm.to(device)
            scorers[(kind, role)] = (sm, path, m)
            report["models"][f"reward-{kind}-{role}"] = m
            log(f"reward.{kind}.{role}.done", **{k: v for k, v in m.items() if k not in ("onnx",)})

    def score(kind, u8, prompts):
        out = {}
        x = rewards.u8_to_unit(torch.from_numpy(u8).to(device))
        ids = torch.from_numpy(tok(prompts)).to(device)
        for role in ("guidance", "held-out"):
            with torch.no_grad():
                out[f"mean_{role}_score"] = float(scorers[(kind, role)][0](x, ids).mean())
        return out

    report["reference_scores"] = {"image_heldout_ground_truth": score("image", ho_img[:S["n_eval"]], ho_img_p[:S["n_eval"]]),
                                  "video_heldout_ground_truth": score("video", ho_vid[:S["n_eval_vid"]], ho_vid_p[:S["n_eval_vid"]])}

    # ------------------------------------------------------------------ generators
    T = S["text"]
    gens = {}
    specs = [("tiny-sd", "sd", "sd"), ("tiny-sd-large", "sd-large", "sd_large"), ("tiny-flux", "flux", "flux"),
             ("tiny-video", "video", "video")]
    for bname, key, ck in specs:
        if key not in which:
            continue
        cfg = S[ck]
        te = text_encoder.TextEncoder(len(tok), T["dim"], T["layers"], T["heads"], tok.max_len)
        is_video = key == "video"
        if is_video:
            model = video.VideoUNet(cfg["ch"], T["dim"])
            lossfn, extra, data = flow.flow_loss, {"shift": VIDEO_SHIFT}, (vlat, vid_ids_t)
        elif key == "flux":
            model = unet.UNet(cfg["ch"], T["dim"])
            lossfn, extra, data = flow.flow_loss, {"shift": FLUX_SHIFT}, (lat, img_ids_t)
        else:
            model = unet.UNet(cfg["ch"], T["dim"])
            lossfn, extra = unet.diffusion_loss("epsilon"), unet.scaled_linear_alphas_cumprod().to(device)
            data = (lat, img_ids_t)
        seed_g = s + 1000 + 101 * len(gens)
        log(f"{bname}.start", params=n_params(model), text_encoder_params=n_params(te))
        m = unet.train_denoiser(bname, model, te, data[0], data[1], empty, lossfn, cfg, device, seed_g, extra)
        m["ch"] = list(cfg["ch"])
        m["data_size"] = len(data[0])
        # quality without search: checker on decoded samples, for held-out and train-distribution prompts
        t = time.time()
        for split, prompts in (("heldout", ho_vid_p[:S["n_eval_vid"]] if is_video else ho_img_p[:S["n_eval"]]),
                               ("train_prompts", ev_vid_p if is_video else ev_img_p)):
            ids = torch.from_numpy(tok(prompts))
            if is_video:
                z = flow.euler_sample(model, te, ids, empty, (video.FRAMES, 4, 8, 8), S["video_sample_steps"],
                                      GUIDANCE[bname], device, seed_g + 1, VIDEO_SHIFT)
                u8 = autoencoder.decode_u8(ae, z.reshape(-1, 4, 8, 8)).reshape(len(prompts), video.FRAMES, 32, 32, 3)
            elif key == "flux":
                z = flow.euler_sample(model, te, ids, empty, (4, 8, 8), S["sample_steps"], GUIDANCE[bname],
                                      device, seed_g + 1, FLUX_SHIFT)
                u8 = autoencoder.decode_u8(ae, z)
            else:
                z = unet.ddim_sample(model, te, ids, empty, (4, 8, 8), S["sample_steps"], GUIDANCE[bname],
                                     "epsilon", device, seed_g + 1)
                u8 = autoencoder.decode_u8(ae, z)
            q = grammar.check_batch(prompts, u8)
            q.update(score("video" if is_video else "image", u8, prompts))
            m[f"samples_{split}"] = q
        m["eval"] = {"sampler": "euler (flow)" if key in ("flux", "video") else "ddim eta=0",
                     "steps": S["video_sample_steps"] if is_video else S["sample_steps"],
                     "guidance_scale": GUIDANCE[bname], "seconds": round(time.time() - t, 2)}
        # export
        model.cpu()
        te.cpu()
        sub = "unet" if key in ("sd", "sd-large") else "transformer"
        tdir = os.path.join(parts, bname)
        if is_video:
            m["onnx"] = video.export(model, tdir, tok.max_len, T["dim"])
        else:
            m["onnx"] = unet.export(model, tdir, sub, tok.max_len, T["dim"])
        m["text_encoder_onnx"] = text_encoder.export(te, os.path.join(tdir, "text_encoder", "model.onnx"), tok.max_len)
        gens[bname] = (key, sub, tdir, model, te)
        report["models"][bname] = m
        log(f"{bname}.done", **{k: v for k, v in m.items() if k not in ("onnx", "text_encoder_onnx")})

    # ------------------------------------------------------------------ bundles
    vae_cfg = {"_class_name": "AutoencoderKL", "latent_channels": 4, "sample_size": 32, "downsample_factor": 4,
               "scaling_factor": ae.scaling_factor, "block_out_channels": [ae.c, 2 * ae.c]}
    total = 0
    bundles = {}
    for bname, (key, sub, tdir, model, te) in gens.items():
        is_video = key == "video"
        kind = "video" if is_video else "image"
        img_shape = ["batch", video.FRAMES, 3, 32, 32] if is_video else ["batch", 3, 32, 32]
        rw = []
        for role in ("guidance", "held-out"):
            sm, path, rm = scorers[(kind, role)]
            rw.append((role, f"tiny-{kind}-clipscore-{role}", path,
                       {"images": {"dtype": "float32", "shape": img_shape, "range": [0, 1],
                                   "layout": "BFCHW" if is_video else "BCHW"},
                        "input_ids": {"dtype": "int64", "shape": ["batch", tok.max_len], "tokenizer": "tokenizer"}},
                       {"score": "100 * cosine(image embedding, text embedding)", "arch": rm["arch"],
                        "heldout_retrieval": rm["retrieval_heldout"]}))
        mcfg = dict(model.config, _class_name="UNet2DConditionModel" if sub == "unet" else "EvoSearchTinyFlowTransformer",
                    prediction_type="epsilon" if key.startswith("sd") else "flow (velocity = noise - x0)",
                    timestep_input="discrete timestep 0..999 (float, rank 0)" if sub == "unet"
                    else "sigma * 1000 (float, rank 0)")
        latent_shape = [video.FRAMES, 4, 8, 8] if is_video else [4, 8, 8]
        meta = {"family": "sd" if key.startswith("sd") else key, "image_size": 32, "latent_shape": latent_shape,
                "frames": video.FRAMES if is_video else 1, "vae_scale": 4,
                "vae_decode": "per frame: reshape [B, 8, 4, 8, 8] -> [B*8, 4, 8, 8]" if is_video else "direct",
                "text_max_length": tok.max_len, "text_hidden_size": T["dim"],
                "uncond_prompt": "", "default_guidance_scale": GUIDANCE[bname],
                "default_steps": S["video_sample_steps"] if is_video else S["sample_steps"],
                "denoiser": sub, "world": "models/world/WORLD.md", "scale": args.scale, "seed": args.seed}
        sched = (export_bundle.ddim_scheduler_config("epsilon") if key.startswith("sd")
                 else flow.scheduler_config(VIDEO_SHIFT if is_video else FLUX_SHIFT))
        p = {"tokenizer": (tok_dir, None),
             "text_encoder": (os.path.join(tdir, "text_encoder", "model.onnx"),
                              dict(te.config, model_type="evosearch-tiny-text", pooler="masked mean + linear",
                                   pad_token_id=0, bos_token_id=2, eos_token_id=3)),
             sub: (os.path.join(tdir, sub, "model.onnx"), mcfg),
             "vae_decoder": (os.path.join(parts, "vae_decoder", "model.onnx"), vae_cfg),
             "vae_encoder": (os.path.join(parts, "vae_encoder", "model.onnx"), vae_cfg)}
        b = export_bundle.write_bundle(args.out, bname, meta["family"], p, meta, sched, rw)
        checked = export_bundle.check_bundle(b)
        nb = export_bundle.folder_bytes(b)
        total += nb
        bundles[bname] = {"path": b, "bytes": nb, "onnx_checked": checked}
        report["models"][bname]["bundle_bytes"] = nb
        report["models"][bname]["denoiser_onnx_bytes"] = os.path.getsize(os.path.join(b, sub, "model.onnx"))
        log("bundle", name=bname, bytes=nb, files=len(checked))
    shutil.rmtree(parts)
    report["bundles"] = bundles
    report["total_bundle_bytes"] = total
    report["total_seconds"] = round(time.time() - T0, 1)
    write_json(os.path.join(args.out, "training-report.json"), report)
    log("done", total_bundle_bytes=total, total_seconds=report["total_seconds"],
        report=os.path.join(args.out, "training-report.json"))
    if total > 50 * 1024 * 1024:
        log("warning", message=f"bundles total {total} bytes, over the 50 MB budget")


if __name__ == "__main__":
    main()
