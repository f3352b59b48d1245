"""Latent diffusion U-Net with cross-attention to the text states (SD recipe: scaled_linear betas
0.00085-0.012, 1000 train steps, epsilon or v prediction, text dropped 10% of the time for
classifier-free guidance). The same backbone, with temporal attention layers, serves the video model.

Latents are 4x8x8, so the U-Net has two resolutions (8x8 and 4x4) plus a middle block; every level
has a ResBlock (with the timestep embedding) and a transformer block (self-attention, cross-attention
to encoder_hidden_states, feed-forward). Widths (c0, c1); doubling both gives about 4x the parameters."""
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import EMA, StepBudget, adamw, autocast, log, lr_at, n_params, set_lr
from .text_encoder import MHA


def gn(c):
    return nn.GroupNorm(8 if c % 8 == 0 else 4, c)


def timestep_embedding(t, dim):
    """Sinusoidal embedding of float timesteps [B] (0..1000 scale) -> [B, dim] (diffusers' flip_sin_to_cos)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResT(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class SpatialTransformer(nn.Module):
    def __init__(self, c, ctx_dim, heads=4):
        super().__init__()
        self.norm = gn(c)
        self.proj_in = nn.Linear(c, c)
        self.n1, self.attn1 = nn.LayerNorm(c), MHA(c, heads)
        self.n2, self.attn2 = nn.LayerNorm(c), MHA(c, heads, ctx_dim)
        self.n3 = nn.LayerNorm(c)
        self.ff = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
        self.proj_out = nn.Linear(c, c)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x).reshape(B, C, H * W).transpose(1, 2))
        h = h + self.attn1(self.n1(h))
        h = h + self.attn2(self.n2(h), ctx)
        h = h + self.ff(self.n3(h))
        return x + self.proj_out(h).transpose(1, 2).reshape(B, C, H, W)


class TemporalAttention(nn.Module):
    """Self-attention across frames at every spatial position (input [B*F, C, H, W])."""

    def __init__(self, c, frames, heads=4):
        super().__init__()
        self.frames = frames
        self.pos = nn.Parameter(torch.randn(1, frames, c) * 0.02)
        self.norm = nn.LayerNorm(c)
        self.attn = MHA(c, heads)
        self.out = nn.Linear(c, c)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        BF, C, H, W = x.shape
        Fr = self.frames
        h = x.reshape(-1, Fr, C, H * W).permute(0, 3, 1, 2).reshape(-1, Fr, C)  # [B*HW, F, C]
        h = self.out(self.attn(self.norm(h + self.pos)))
        h = h.reshape(-1, H * W, Fr, C).permute(0, 2, 3, 1).reshape(BF, C, H, W)
        return x + h


class UNet(nn.Module):
    def __init__(self, ch=(48, 96), ctx_dim=128, heads=4, frames=None, in_ch=4):
        super().__init__()
        c0, c1 = ch
        td = 4 * c0
        self.config = dict(block_out_channels=list(ch), cross_attention_dim=ctx_dim, attention_heads=heads,
                           in_channels=in_ch, out_channels=in_ch, sample_size=8, num_frames=frames)
        self.c0, self.frames = c0, frames
        self.temb = nn.Sequential(nn.Linear(c0, td), nn.SiLU(), nn.Linear(td, td))
        self.conv_in = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.d0r, self.d0t = ResT(c0, c0, td), SpatialTransformer(c0, ctx_dim, heads)
        self.down = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.d1r, self.d1t = ResT(c0, c1, td), SpatialTransformer(c1, ctx_dim, heads)
        self.m1, self.mt, self.m2 = ResT(c1, c1, td), SpatialTransformer(c1, ctx_dim, heads), ResT(c1, c1, td)
        self.u1r, self.u1t = ResT(2 * c1, c1, td), SpatialTransformer(c1, ctx_dim, heads)
        self.u1r2 = ResT(c1 + c0, c1, td)
        self.up = nn.Conv2d(c1, c1, 3, padding=1)
        self.u0r, self.u0t = ResT(c1 + c0, c0, td), SpatialTransformer(c0, ctx_dim, heads)
        self.out = nn.Sequential(gn(c0), nn.SiLU(), nn.Conv2d(c0, in_ch, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        if frames:
            self.tmp = nn.ModuleList([TemporalAttention(c, frames, heads) for c in (c0, c1, c1, c1, c0)])

    def _t(self, i, h):
        return self.tmp[i](h) if self.frames else h

    def forward(self, x, t, ctx):
        """x [B, 4, 8, 8] (or [B*F, 4, 8, 8] for video), t float [B] or [1], ctx [B, L, D]."""
        temb = self.temb(timestep_embedding(t.reshape(-1), self.c0))
        h = self.conv_in(x)
        h = self._t(0, self.d0t(self.d0r(h, temb), ctx))
        s0 = h
        h = self.down(h)
        s1 = h
        h = self._t(1, self.d1t(self.d1r(h, temb), ctx))
        s2 = h
        h = self.m2(self._t(2, self.mt(self.m1(h, temb), ctx)), temb)
        h = self._t(3, self.u1t(self.u1r(torch.cat([h, s2], 1), temb), ctx))
        h = self.u1r2(torch.cat([h, s1], 1), temb)
        h = self.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self._t(4, self.u0t(self.u0r(torch.cat([h, s0], 1), temb), ctx))
        return self.out(h)


class ExportUNet(nn.Module):
    """ONNX signature of the SD export: sample [B,4,8,8], timestep float rank 0, encoder_hidden_states."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states):
        t = timestep.reshape(-1) * torch.ones_like(sample[:, 0, 0, 0])
        return self.m(sample, t, encoder_hidden_states)


# --------------------------------------------------------------------------------------- diffusion

def scaled_linear_alphas_cumprod(n=1000, b0=0.00085, b1=0.012):
    betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def diffusion_loss(prediction_type):
    def fn(model, x0, ctx, g, ac):
        B = x0.shape[0]
        t = torch.randint(0, 1000, (B,), device=x0.device, generator=g)
        a = ac[t].view(B, *([1] * (x0.dim() - 1)))
        eps = torch.randn(x0.shape, device=x0.device, generator=g)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        target = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
        out = model(xt, t.float(), ctx).float()
        return F.mse_loss(out, target)
    return fn


def train_denoiser(name, model, te, latents, ids, empty_ids, loss_fn, cfg, device, seed, extra=None):
    """Joint training of a denoiser and its text encoder. latents [N, ...] and ids [N, L] on device."""
    torch.manual_seed(seed)
    model.to(device).train()
    te.to(device).train()
    params = list(model.parameters()) + list(te.parameters())
    opt = adamw(params, cfg["lr"], device, weight_decay=0.01, betas=(0.9, 0.99))
    ema_m, ema_t = EMA(model, 0.999), EMA(te, 0.999)
    g = torch.Generator(device=device).manual_seed(seed)
    N, steps, bs = len(latents), cfg["steps"], cfg["batch"]
    empty = empty_ids.to(device)[None]
    t0 = time.time()
    losses = []
    budget = StepBudget(steps, cfg.get("seconds"), device)
    step = -1
    while step + 1 < budget.total:
        step += 1
        steps = budget.total
        set_lr(opt, lr_at(step, steps, cfg["lr"], warmup=min(200, steps // 10 + 1)))
        idx = torch.randint(0, N, (bs,), device=device, generator=g)
        x0, tok = latents[idx], ids[idx]
        drop = torch.rand(bs, device=device, generator=g) < cfg.get("p_uncond", 0.1)
        tok = torch.where(drop[:, None], empty.expand(bs, -1), tok)
        with autocast(device):
            ctx, _ = te(tok)
            loss = loss_fn(model, x0, ctx, g, extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(0.999, (1 + step) / (10 + step))
        ema_m.update(model, d)
        ema_t.update(te, d)
        losses.append(loss.detach())
        budget.after(step)
        if step % max(1, steps // 10) == 0 or step == budget.total - 1:
            log(f"{name}.step", step=step, loss=float(torch.stack(losses[-50:]).mean()),
                elapsed=round(time.time() - t0, 1))
    ema_m.copy_to(model)
    ema_t.copy_to(te)
    model.eval()
    te.eval()
    tail = float(torch.stack(losses[-max(1, steps // 10):]).mean())
    return {**budget.facts(), "batch": bs, "lr": cfg["lr"], "train_seconds": round(time.time() - t0, 2),
            "final_loss": tail, "params": n_params(model), "text_encoder_params": n_params(te)}


@torch.no_grad()
def ddim_sample(model, te, ids, empty_ids, shape, steps, guidance, prediction_type, device, seed):
    """DDIM (eta 0), 'leading' spacing with steps_offset 1, set_alpha_to_one False (the SD 2.1 config)."""
    ac = scaled_linear_alphas_cumprod().to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    B = ids.shape[0]
    x = torch.randn((B,) + tuple(shape), device=device, generator=g)
    cond, _ = te(ids.to(device))
    unc, _ = te(empty_ids.to(device)[None].expand(B, -1))
    ctx = torch.cat([unc, cond])
    ratio = 1000 // steps
    ts = (np.arange(0, steps) * ratio)[::-1] + 1
    for t in ts:
        tt = torch.full((2 * B,), float(t), device=device)
        with autocast(device):
            out = model(torch.cat([x, x]), tt, ctx).float()
        u, c = out.chunk(2)
        out = u + guidance * (c - u)
        a = ac[t]
        prev = t - ratio
        ap = ac[prev] if prev >= 0 else ac[0]
        if prediction_type == "epsilon":
            eps = out
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        else:
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
            eps = a.sqrt() * out + (1 - a).sqrt() * x
        x = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
    return x


def export(model, folder, sub="unet", ctx_len=16, ctx_dim=128):
    from .common import export_onnx
    wrap = ExportUNet(model)
    return export_onnx(wrap, (torch.randn(2, 4, 8, 8), torch.tensor(500.0), torch.randn(2, ctx_len, ctx_dim)),
                       f"{folder}/{sub}/model.onnx", ["sample", "timestep", "encoder_hidden_states"],
                       ["out_sample"], {"sample": {0: "batch"}, "encoder_hidden_states": {0: "batch"},
                                        "out_sample": {0: "batch"}})
