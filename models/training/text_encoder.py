"""Small transformer text encoder (CLIP-text-like): token + position embeddings, pre-norm
transformer layers with a key padding mask, final LayerNorm -> last_hidden_state [B, L, D];
pooler_output [B, D] = masked mean of the final states, projected.

Design choice: each generator trains its own text encoder JOINTLY with its denoiser (as the
U-Net's gradient is the only signal the denoiser needs), from scratch. With a 31-word closed
vocabulary a contrastive encoder would be free to collapse word order (bag of words), which loses
'left of' vs 'right of' and which group a count belongs to; the denoising loss does not allow that.
The reward scorers (rewards.py) train their own encoders contrastively and share nothing with the
generators, so guidance never scores a sample with the generator's own text features."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tokenizer import PAD


class MHA(nn.Module):
    """Plain multi-head attention written with matmuls (exports the same on torch 1.13 and 2.x)."""

    def __init__(self, dim, heads, ctx_dim=None):
        super().__init__()
        ctx_dim = ctx_dim or dim
        self.h = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(ctx_dim, dim, bias=False)
        self.v = nn.Linear(ctx_dim, dim, bias=False)
        self.o = nn.Linear(dim, dim)

    def forward(self, x, ctx=None, bias=None):
        ctx = x if ctx is None else ctx
        B, N, C = x.shape
        M = ctx.shape[1]
        h = self.h
        q = self.q(x).reshape(B, N, h, C // h).transpose(1, 2)
        k = self.k(ctx).reshape(B, M, h, C // h).transpose(1, 2)
        v = self.v(ctx).reshape(B, M, h, C // h).transpose(1, 2)
        a = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if bias is not None:
            a = a + bias
        a = a.softmax(-1)
        out = torch.matmul(a, v).transpose(1, 2).reshape(B, N, C)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp=4):
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.attn = MHA(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * mlp), nn.GELU(), nn.Linear(dim * mlp, dim))

    def forward(self, x, bias=None):
        x = x + self.attn(self.n1(x), bias=bias)
        return x + self.ff(self.n2(x))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, dim=128, layers=3, heads=4, max_len=16):
        super().__init__()
        self.dim = dim
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Linear(dim, dim)
        self.config = dict(vocab_size=vocab_size, hidden_size=dim, num_hidden_layers=layers,
                           num_attention_heads=heads, max_position_embeddings=max_len)

    def forward(self, input_ids):
        mask = (input_ids != PAD).float()  # [B, L]
        x = self.tok(input_ids) + self.pos[:, : input_ids.shape[1]]
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for b in self.blocks:
            x = b(x, bias)
        x = self.norm(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return x, self.pool(pooled)


def export(te, path, max_len):
    from .common import export_onnx
    ids = torch.full((2, max_len), PAD, dtype=torch.long)
    ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3] = 2, 4, 10, 3
    return export_onnx(te, (ids,), path, ["input_ids"], ["last_hidden_state", "pooler_output"],
                       {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"},
                        "pooler_output": {0: "batch"}})
