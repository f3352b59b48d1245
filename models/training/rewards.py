"""Image-text (and video-text) scorers, CLIPScore analogues trained contrastively (InfoNCE, in-batch
negatives plus one hard negative prompt per sample that differs in a single attribute: color, shape,
count, relation, group order or motion). score = 100 * cos(image embedding, text embedding).

Two independent scorers per modality, with different architectures and seeds:
  guidance  -- CNN image tower + 2-layer transformer text tower (the reward the search optimises)
  held-out  -- ViT (4x4 patches) image tower + 3-layer transformer text tower of another width
               (reported only, never optimised, to catch reward hacking)
Video scorers take [B, 8, 3, 32, 32] (the frames stacked on the channel axis inside the model, so
motion is visible to the first layer).
ONNX: images float [B, 3, 32, 32] (or [B, 8, 3, 32, 32]) in [0, 1], input_ids int64 [B, L] -> scores [B]."""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import EMA, StepBudget, adamw, autocast, log, lr_at, n_params, set_lr
from .text_encoder import Block, TextEncoder


class CNNTower(nn.Module):
    def __init__(self, in_ch, dim, c=32):
        super().__init__()

        def blk(a, b, s):
            return nn.Sequential(nn.Conv2d(a, b, 3, stride=s, padding=1), nn.GroupNorm(8, b), nn.SiLU())
        self.net = nn.Sequential(blk(in_ch, c, 1), blk(c, 2 * c, 2), blk(2 * c, 2 * c, 1), blk(2 * c, 4 * c, 2),
                                 blk(4 * c, 4 * c, 1), blk(4 * c, 4 * c, 2), nn.Conv2d(4 * c, 32, 1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        return self.head(self.net(x))


class ViTTower(nn.Module):
    def __init__(self, in_ch, dim, width=96, layers=3, patch=4):
        super().__init__()
        self.patch = nn.Conv2d(in_ch, width, patch, stride=patch)
        n = (32 // patch) ** 2
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList([Block(width, 4) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], 1) + self.pos
        for b in self.blocks:
            h = b(h)
        return self.proj(self.norm(h[:, 0]))


ARCHS = {
    "guidance": dict(tower="cnn", text_dim=96, text_layers=2, emb=128),
    "held-out": dict(tower="vit", text_dim=64, text_layers=3, emb=96),
}


class Scorer(nn.Module):
    def __init__(self, vocab, role="guidance", frames=1, max_len=16, small=False):
        super().__init__()
        a = ARCHS[role]
        self.frames = frames
        in_ch = 3 * frames
        if a["tower"] == "cnn":
            self.img = CNNTower(in_ch, a["emb"], c=16 if small else 32)
        else:
            self.img = ViTTower(in_ch, a["emb"], width=48 if small else 96, layers=2 if small else 3)
        self.txt = TextEncoder(vocab, a["text_dim"], a["text_layers"], 4, max_len)
        self.txt_proj = nn.Linear(a["text_dim"], a["emb"])
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
        self.arch = dict(a, frames=frames)

    def embed_images(self, images):
        """images in [0, 1]: [B, 3, 32, 32] or [B, F, 3, 32, 32]."""
        x = images.reshape(images.shape[0], 3 * self.frames, 32, 32) * 2.0 - 1.0
        return F.normalize(self.img(x).float(), dim=-1)

    def embed_text(self, ids):
        _, pooled = self.txt(ids)
        return F.normalize(self.txt_proj(pooled).float(), dim=-1)

    def forward(self, images, input_ids):
        return 100.0 * (self.embed_images(images) * self.embed_text(input_ids)).sum(-1)


def u8_to_unit(u8):
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return (u8.float() / 255.0).movedim(-1, -3).contiguous()


def train(role, data_u8, ids, pids, neg_ids, vocab, cfg, device, seed, frames=1):
    """data_u8 [N, (F,) 32, 32, 3] uint8, ids [N, L], pids [N] canonical prompt index, neg_ids [N, K, L]."""
    torch.manual_seed(seed)
    m = Scorer(vocab, role, frames, ids.shape[1], small=cfg.get("small", False)).to(device).train()
    if device.type == "cuda":
        m.img = m.img.to(memory_format=torch.channels_last)
    opt = adamw(m.parameters(), cfg["lr"], device, weight_decay=0.05)
    ema = EMA(m, 0.998)
    g = torch.Generator(device=device).manual_seed(seed)
    N, steps, bs, K = len(data_u8), cfg["steps"], cfg["batch"], neg_ids.shape[1]
    t0, losses, accs = time.time(), [], []
    budget = StepBudget(steps, cfg.get("seconds"), device)
    blur = cfg.get("blur", 0.0)
    step = -1
    while step + 1 < budget.total:
        step += 1
        steps = budget.total
        set_lr(opt, lr_at(step, steps, cfg["lr"], warmup=min(200, steps // 10 + 1)))
        idx = torch.randint(0, N, (bs,), device=device, generator=g)
        x = u8_to_unit(data_u8[idx])
        x = (x + cfg.get("noise", 0.03) * torch.randn(x.shape, device=device, generator=g)).clamp(0, 1)
        if blur > 0:
            x = _blur_some(x, blur, g)
        # H hard negatives per sample, drawn from its K one-attribute changes
        H = min(cfg.get("hard_per_sample", 1), K)
        kk = torch.randint(0, K, (bs, H), device=device, generator=g)
        tok = torch.cat([ids[idx], neg_ids[idx[:, None], kk].reshape(bs * H, -1)])
        p = pids[idx]
        with autocast(device):
            ie = m.embed_images(x)
            te = m.embed_text(tok)
        scale = m.logit_scale.exp().clamp(max=100.0)
        lab = torch.arange(bs, device=device)
        te_true, te_hard = te[:bs], te[bs:].view(bs, H, -1)
        logits = scale * ie @ te_true.t()  # [B, B]: in-batch prompts
        same = (p[:, None] == p[None, :]) & ~torch.eye(bs, dtype=torch.bool, device=device)
        logits = logits.masked_fill(same, -1e4)
        hard = scale * (ie[:, None] * te_hard).sum(-1)  # [B, H]: the sample's own hard negatives
        loss = F.cross_entropy(torch.cat([logits, hard], 1), lab) + F.cross_entropy(logits.t(), lab)
        # the true prompt against its own changes only, so the in-batch prompts (easy) cannot dilute it
        own = torch.cat([logits[lab, lab][:, None], hard], 1)
        loss = loss + cfg.get("hard_weight", 1.0) * F.cross_entropy(own, torch.zeros_like(lab))
        logits = torch.cat([logits, hard], 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        ema.update(m, min(0.998, (1 + step) / (10 + step)))
        losses.append(loss.detach())
        accs.append((logits.argmax(1) == lab).float().mean().detach())
        budget.after(step)
        if step % max(1, steps // 10) == 0 or step == budget.total - 1:
            log(f"reward.{role}{'.video' if frames > 1 else ''}.step", step=step,
                loss=float(torch.stack(losses[-50:]).mean()), acc=float(torch.stack(accs[-50:]).mean()),
                elapsed=round(time.time() - t0, 1))
    ema.copy_to(m)
    m.img = m.img.to(memory_format=torch.contiguous_format)
    m.eval()
    tail = max(1, steps // 10)
    return m, {**budget.facts(), "batch": bs, "train_seconds": round(time.time() - t0, 2),
               "final_loss": float(torch.stack(losses[-tail:]).mean()),
               "final_train_batch_acc": float(torch.stack(accs[-tail:]).mean()),
               "params": n_params(m), "arch": m.arch}


def _blur_some(x, share, g):
    """A 3x3 binomial blur on a random `share` of the images: generated samples are softer than the
    world's renders, and a scorer that only saw sharp edges misjudges them."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    flat = x.reshape(-1, 3, *x.shape[-2:])  # video frames blur one by one
    soft = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), k, groups=3).reshape(x.shape)
    pick = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, generator=g) < share
    return torch.where(pick, soft, x)


@torch.no_grad()
def one_attribute_preference(score, data_u8, prompts, tokenizer, device, batch=512):
    """How often the scorer prefers the true prompt over each one-attribute change of it (every color,
    shape, count and size of each group, the relation, the order of the groups, the motion: see
    grammar.one_attribute_changes). `score(images_unit, input_ids) -> scores` (torch tensors on
    `device`), so the same count runs on a torch module or an ONNX session. Returns the share of
    (image, change) pairs won, per kind, and the share of images whose true prompt beats every change."""
    from . import grammar
    won, total, kinds, all_beaten = 0, 0, {}, 0
    for i in range(0, len(prompts), batch):
        x = u8_to_unit(data_u8[i:i + batch].to(device))
        chunk = prompts[i:i + batch]
        changes = [grammar.one_attribute_changes(p) for p in chunk]
        rows, texts = [], []
        for j, (p, ch) in enumerate(zip(chunk, changes)):
            rows += [j] * (1 + len(ch))
            texts += [p] + [t for _, t in ch]
        rows_t = torch.tensor(rows, device=device)
        ids = torch.from_numpy(tokenizer(texts)).to(device)
        s = torch.cat([score(x[rows_t[k:k + 4096]], ids[k:k + 4096]) for k in range(0, len(texts), 4096)]).float().cpu()
        at = 0
        for ch in changes:
            true, rest = s[at], s[at + 1:at + 1 + len(ch)]
            at += 1 + len(ch)
            wins = (rest < true).tolist()
            won += sum(wins)
            total += len(wins)
            all_beaten += int(all(wins))
            for (kind, _), w in zip(ch, wins):
                a = kinds.setdefault(kind, [0, 0])
                a[0] += int(w)
                a[1] += 1
    return {"pairwise": won / max(1, total), "pairs": total, "images": len(prompts),
            "beats_every_change": all_beaten / max(1, len(prompts)),
            "by_kind": {k: round(a[0] / a[1], 4) for k, a in sorted(kinds.items())},
            "pairs_by_kind": {k: a[1] for k, a in sorted(kinds.items())}}


@torch.no_grad()
def retrieval(m, data_u8, prompts, tokenizer, device, rng, k_hard=8, group=32):
    """Held-out retrieval: (hard) the true prompt against k_hard one-attribute perturbations;
    (group) image -> prompt among `group` samples with distinct prompts."""
    from . import grammar
    m.eval()
    n = len(prompts)
    x = u8_to_unit(data_u8.to(device))
    ie = torch.cat([m.embed_images(x[i:i + 512]) for i in range(0, n, 512)])
    cands = []
    for p in prompts:
        cands.append([p] + [grammar.perturb(p, rng, allow_heldout=True) for _ in range(k_hard)])
    flat = [c for cs in cands for c in cs]
    tok = torch.from_numpy(tokenizer(flat)).to(device)
    te = torch.cat([m.embed_text(tok[i:i + 2048]) for i in range(0, len(flat), 2048)]).view(n, k_hard + 1, -1)
    s = (ie[:, None] * te).sum(-1)
    hard = float((s.argmax(1) == 0).float().mean())
    # group retrieval among distinct prompts
    canon = [grammar.canonical(p) for p in prompts]
    seen, order = set(), []
    for i, c in enumerate(canon):
        if c not in seen:
            seen.add(c)
            order.append(i)
    hits, total = 0, 0
    tp = m.embed_text(torch.from_numpy(tokenizer([prompts[i] for i in order])).to(device))
    for j in range(0, len(order) - group + 1, group):
        sel = order[j:j + group]
        sim = ie[sel] @ tp[j:j + group].t()
        hits += int((sim.argmax(1) == torch.arange(len(sel), device=device)).sum())
        total += len(sel)
    return {"hard_negative_top1": hard, "k_hard": k_hard,
            f"top1_of_{group}": hits / max(1, total), "n_images": n, "n_group_images": total}


class _ScoresAndEmbeddings(nn.Module):
    """The exported graph: scores, plus the unit-normalised image embedding (`image_embeds`) that the
    search-quality benchmark measures diversity with."""

    def __init__(self, scorer):
        super().__init__()
        self.scorer = scorer

    def forward(self, images, input_ids):
        image = self.scorer.embed_images(images)
        return 100.0 * (image * self.scorer.embed_text(input_ids)).sum(-1), image


def export(m, path, frames=1, max_len=16):
    from .common import export_onnx
    img = torch.rand(2, 3, 32, 32) if frames == 1 else torch.rand(2, frames, 3, 32, 32)
    ids = torch.zeros(2, max_len, dtype=torch.long)
    ids[:, :4] = torch.tensor([2, 4, 10, 3])
    return export_onnx(_ScoresAndEmbeddings(m), (img, ids), path, ["images", "input_ids"],
                       ["scores", "image_embeds"],
                       {"images": {0: "batch"}, "input_ids": {0: "batch"}, "scores": {0: "batch"},
                        "image_embeds": {0: "batch"}})
