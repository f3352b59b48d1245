"""Small KL autoencoder: 32x32x3 images in [-1, 1] <-> 4x8x8 latents (AutoencoderKL-like, a KL
penalty of small weight). Exports vae_encoder (sample -> latent_parameters [B, 8, 8, 8]: mean and
log-variance) and vae_decoder (latent_sample [B, 4, 8, 8] -> sample [B, 3, 32, 32])."""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import EMA, StepBudget, adamw, autocast, log, lr_at, n_params, set_lr


def gn(c):
    return nn.GroupNorm(min(8, c // 4), c)


class Res(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    def __init__(self, c=32, z=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), Res(c, c),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), Res(2 * c, 2 * c),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), Res(2 * c, 2 * c), Res(2 * c, 2 * c),
            gn(2 * c), nn.SiLU(), nn.Conv2d(2 * c, 2 * z, 3, padding=1))

    def forward(self, sample):
        return self.net(sample)  # latent_parameters: [mean, logvar]


class Decoder(nn.Module):
    def __init__(self, c=32, z=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(z, 2 * c, 3, padding=1), Res(2 * c, 2 * c), Res(2 * c, 2 * c),
            nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(2 * c, 2 * c, 3, padding=1), Res(2 * c, 2 * c),
            nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1), Res(c, c),
            gn(c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, latent_sample):
        return self.net(latent_sample)


class AutoEncoder(nn.Module):
    def __init__(self, c=32, z=4):
        super().__init__()
        self.encoder, self.decoder = Encoder(c, z), Decoder(c, z)
        self.c, self.z = c, z
        self.scaling_factor = 1.0

    def encode_mean(self, x):
        return self.encoder(x).chunk(2, 1)[0]


def to_float(u8):
    """uint8 [..., H, W, 3] (torch, any device) -> float [..., 3, H, W] in [-1, 1]."""
    x = u8.float() / 127.5 - 1.0
    return x.movedim(-1, -3).contiguous()


def psnr(ae, images_u8, device, bs=1024):
    ae.eval()
    mse = []
    with torch.no_grad():
        for i in range(0, len(images_u8), bs):
            x = to_float(images_u8[i:i + bs].to(device))
            y = ae.decoder(ae.encode_mean(x)).clamp(-1, 1)
            mse.append(((y - x) ** 2).mean(dim=(1, 2, 3)))
    mse = torch.cat(mse)
    return float((10 * torch.log10(4.0 / mse.clamp(min=1e-10))).mean())


def train(images_u8, cfg, device, seed):
    """images_u8: uint8 tensor [N, 32, 32, 3] already on `device`."""
    torch.manual_seed(seed)
    ae = AutoEncoder(cfg["ch"]).to(device)
    cl = device.type == "cuda"  # channels_last: faster bf16 convolutions on tensor cores
    if cl:
        ae = ae.to(memory_format=torch.channels_last)
    opt = adamw(ae.parameters(), cfg["lr"], device, weight_decay=0.0)
    ema = EMA(ae, 0.995)
    g = torch.Generator(device=device).manual_seed(seed)
    N, steps, bs = len(images_u8), cfg["steps"], cfg["batch"]
    t0, hist = time.time(), []
    ae.train()
    budget = StepBudget(steps, cfg.get("seconds"), device)
    step = -1
    while step + 1 < budget.total:
        step += 1
        steps = budget.total
        set_lr(opt, lr_at(step, steps, cfg["lr"], warmup=min(100, steps // 10 + 1)))
        idx = torch.randint(0, N, (bs,), device=device, generator=g)
        x = to_float(images_u8[idx])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            mean, logvar = ae.encoder(x).float().chunk(2, 1)
            logvar = logvar.clamp(-20, 10)
            z = mean + torch.randn(mean.shape, device=device, generator=g) * (0.5 * logvar).exp()
            y = ae.decoder(z).float()
        rec = F.mse_loss(y, x) + 0.1 * F.l1_loss(y, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = rec + cfg["kl"] * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        ema.update(ae, min(0.995, (1 + step) / (10 + step)))
        budget.after(step)
        if step % max(1, steps // 10) == 0 or step == budget.total - 1:
            log("autoencoder.step", step=step, rec=float(rec.detach()), kl=float(kl.detach()), elapsed=round(time.time() - t0, 1))
    ema.copy_to(ae)
    ae = ae.to(memory_format=torch.contiguous_format)
    ae.eval()
    # scaling factor: scaled latents (mean of the posterior) have unit variance
    with torch.no_grad():
        sub = images_u8[:min(N, 8192)]
        lat = torch.cat([ae.encode_mean(to_float(sub[i:i + 1024])) for i in range(0, len(sub), 1024)])
    ae.scaling_factor = float(1.0 / lat.float().std())
    return ae, {**budget.facts(), "batch": bs, "train_seconds": time.time() - t0,
                "final_rec_loss": float(rec.detach()), "final_kl": float(kl.detach()), "params": n_params(ae),
                "encoder_params": n_params(ae.encoder), "decoder_params": n_params(ae.decoder),
                "scaling_factor": ae.scaling_factor, "latent_std_unscaled": float(lat.std()),
                "latent_mean_unscaled": float(lat.mean())}


@torch.no_grad()
def encode_all(ae, images_u8, device, bs=2048):
    """Scaled latents (posterior mean x scaling_factor) of uint8 images [N, 32, 32, 3] -> [N, 4, 8, 8]."""
    ae.eval()
    out = [ae.encode_mean(to_float(images_u8[i:i + bs].to(device))) * ae.scaling_factor
           for i in range(0, len(images_u8), bs)]
    return torch.cat(out).float()


@torch.no_grad()
def decode_u8(ae, latents_scaled, bs=2048):
    """Scaled latents [N, 4, 8, 8] -> uint8 images [N, 32, 32, 3] (numpy), as the host pipeline does."""
    ae.eval()
    outs = []
    for i in range(0, len(latents_scaled), bs):
        y = ae.decoder(latents_scaled[i:i + bs].float() / ae.scaling_factor)
        y = ((y / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        outs.append(y.movedim(1, -1).cpu())
    return torch.cat(outs).numpy()


def export(ae, folder):
    from .common import export_onnx, write_json
    dec = ae.decoder
    enc = ae.encoder
    f1 = export_onnx(dec, (torch.randn(2, 4, 8, 8),), f"{folder}/vae_decoder/model.onnx",
                     ["latent_sample"], ["sample"], {"latent_sample": {0: "batch"}, "sample": {0: "batch"}})
    f2 = export_onnx(enc, (torch.randn(2, 3, 32, 32),), f"{folder}/vae_encoder/model.onnx",
                     ["sample"], ["latent_parameters"], {"sample": {0: "batch"}, "latent_parameters": {0: "batch"}})
    cfg = {"_class_name": "AutoencoderKL", "_evosearch_tiny": True, "in_channels": 3, "out_channels": 3,
           "latent_channels": 4, "sample_size": 32, "downsample_factor": 4,
           "block_out_channels": [ae.c, 2 * ae.c], "scaling_factor": ae.scaling_factor,
           "shift_factor": None, "force_upcast": False}
    write_json(f"{folder}/vae_decoder/config.json", cfg)
    write_json(f"{folder}/vae_encoder/config.json", cfg)
    return [f1, f2]
