"""Latent video flow model over [frames=8, 4, 8, 8] latents: each frame is encoded by the image
autoencoder, the denoiser is the U-Net of unet.py with a temporal self-attention layer after every
spatial transformer (frames folded into the batch for the 2D parts). Rectified-flow objective as in
flow.py. ONNX signature: sample [B, 8, 4, 8, 8], timestep float rank 0 (sigma * 1000),
encoder_hidden_states [B, L, D] -> out_sample [B, 8, 4, 8, 8]. Decode frame by frame with the
vae_decoder (reshape to [B*8, 4, 8, 8])."""
import torch
import torch.nn as nn

from .unet import UNet

FRAMES = 8


class VideoUNet(nn.Module):
    def __init__(self, ch=(48, 96), ctx_dim=128, heads=4, frames=FRAMES):
        super().__init__()
        self.frames = frames
        self.net = UNet(ch, ctx_dim, heads, frames=frames)
        self.config = dict(self.net.config)

    def forward(self, x, t, ctx):
        """x [B, F, 4, 8, 8], t [B] or [1], ctx [B, L, D]."""
        Fr = self.frames
        B, _, C, H, W = x.shape
        t = t.reshape(-1) * torch.ones_like(x[:, 0, 0, 0, 0])
        tf = t[:, None].expand(-1, Fr).reshape(-1)
        L, D = ctx.shape[1], ctx.shape[2]
        cf = ctx[:, None].expand(-1, Fr, -1, -1).reshape(-1, L, D)
        out = self.net(x.reshape(-1, C, H, W), tf, cf)
        return out.reshape(-1, Fr, C, H, W)


class ExportVideo(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.m(sample, timestep.reshape(-1), encoder_hidden_states)


def export(model, folder, ctx_len=16, ctx_dim=128):
    from .common import export_onnx
    return export_onnx(ExportVideo(model),
                       (torch.randn(2, FRAMES, 4, 8, 8), torch.tensor(500.0), torch.randn(2, ctx_len, ctx_dim)),
                       f"{folder}/transformer/model.onnx", ["sample", "timestep", "encoder_hidden_states"],
                       ["out_sample"], {"sample": {0: "batch"}, "encoder_hidden_states": {0: "batch"},
                                        "out_sample": {0: "batch"}})
