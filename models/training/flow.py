"""Latent rectified flow (the FLUX / SD3 recipe): x_t = (1 - t) x0 + t eps, the network predicts the
velocity v = eps - x0, its timestep input is sigma * 1000, training sigmas are logit-normal.
Sampling is Euler from sigma 1 to 0 (FlowMatchEulerDiscreteScheduler, shift configurable).
The backbone is the U-Net of unet.py (same signature), exported as transformer/model.onnx."""
import numpy as np
import torch
import torch.nn.functional as F

from .common import autocast


def flow_loss(model, x0, ctx, g, extra=None):
    B = x0.shape[0]
    shape = (B,) + (1,) * (x0.dim() - 1)
    # logit-normal sigmas (SD3), mixed with 10% uniform so the ends are covered too
    s = torch.sigmoid(torch.randn(B, device=x0.device, generator=g))
    u = torch.rand(B, device=x0.device, generator=g)
    s = torch.where(torch.rand(B, device=x0.device, generator=g) < 0.1, u, s)
    shift = (extra or {}).get("shift", 1.0)
    s = shift * s / (1 + (shift - 1) * s)
    eps = torch.randn(x0.shape, device=x0.device, generator=g)
    xt = (1 - s.view(shape)) * x0 + s.view(shape) * eps
    out = model(xt, s * 1000.0, ctx).float()
    return F.mse_loss(out, eps - x0)


def sigmas(steps, shift=1.0):
    s = np.linspace(1.0, 1.0 / steps, steps)
    s = shift * s / (1 + (shift - 1) * s)
    return np.append(s, 0.0)


@torch.no_grad()
def euler_sample(model, te, ids, empty_ids, shape, steps, guidance, device, seed, shift=1.0):
    g = torch.Generator(device=device).manual_seed(seed)
    B = ids.shape[0]
    x = torch.randn((B,) + tuple(shape), device=device, generator=g)
    cond, _ = te(ids.to(device))
    unc, _ = te(empty_ids.to(device)[None].expand(B, -1))
    ctx = torch.cat([unc, cond])
    sg = sigmas(steps, shift)
    for i in range(steps):
        tt = torch.full((2 * B,), float(sg[i] * 1000.0), device=device)
        with autocast(device):
            v = model(torch.cat([x, x]), tt, ctx).float()
        u, c = v.chunk(2)
        v = u + guidance * (c - u)
        x = x + float(sg[i + 1] - sg[i]) * v
    return x


def scheduler_config(shift=1.0):
    return {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.30.0",
            "num_train_timesteps": 1000, "shift": shift, "use_dynamic_shifting": False,
            "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096,
            "invert_sigmas": False, "shift_terminal": None, "use_karras_sigmas": False,
            "use_exponential_sigmas": False, "use_beta_sigmas": False,
            "time_shift_type": "exponential", "stochastic_sampling": False}
