"""Write the world fixtures the TypeScript checker tests read (test/fixtures/world/).

    /usr/bin/python3 models/world/make_fixtures.py     (from the repository root; deterministic)

Files:
  world-fixtures.json   palette and sizes as rendered, the scenes, and the cases (prompt + scene + expectation)
  world-pixels.bin.gz   the scenes' pixels, uint8, channels last, back to back in scene order (images
                        [32, 32, 3], videos [8, 32, 32, 3]); gzip with mtime 0, so reruns are byte-identical

Cases:
  positive  the scene was laid out for this very prompt: every check must pass;
  negative  the prompt of a different scene, changed in exactly one known way; `check` names the one check
            that must fail ({kind, group}); `violation` says how the prompt was changed: color, shape,
            count (the group's number), relation (swapped), missing (the prompt names a group the image
            lacks: fails that group's count), direction (video moving elsewhere).
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.world.prompts import (COLORS, DIRECTIONS, RELATIONS, SHAPES, Group, Prompt, RADIUS,  # noqa: E402
                                  fits, format_prompt, is_heldout, parse, sample_prompt)
from models.world.world import BACKGROUND, PALETTE, layout, render_image, render_video  # noqa: E402
from models.world.prompts import CANVAS, FRAMES, STEP  # noqa: E402

OUT = ROOT / "test" / "fixtures" / "world"
SEED = 20240611
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above",
            "left": "right", "right": "left", "up": "down", "down": "up"}
PERPENDICULAR = {"left": "up", "right": "down", "up": "right", "down": "left"}


def coverage_prompts(rng: np.random.Generator) -> list:
    """Image prompts covering every color x shape, count word, size, form and relation, plus random ones."""
    out = []
    words = ("a", "one", "two", "three")
    sizes = ("small", None, "large")
    i = 0
    for color in COLORS:
        for shape in SHAPES:
            w = words[i % 4]
            n = {"a": 1, "one": 1, "two": 2, "three": 3}[w]
            out.append(Prompt("single", (Group(n, sizes[i % 3], color, shape, "one" if w == "one" else None),)))
            i += 1
    # Relations: every relation four times, with random groups (one of each split half at least).
    for rel in RELATIONS:
        k = 0
        while k < 4:
            p = sample_prompt(rng, "train" if k % 2 == 0 else "heldout", "image")
            if p.form != "relation":
                continue
            out.append(Prompt("relation", p.groups, relation=rel))
            if not fits(out[-1]):
                out.pop()
                continue
            k += 1
    # Conjunctions and the grammar's own mix.
    k = 0
    while k < 10:
        p = sample_prompt(rng, "train" if k % 2 == 0 else "heldout", "image")
        if p.form == "conjunction":
            out.append(p)
            k += 1
    for k in range(16):
        out.append(sample_prompt(rng, "train" if k % 2 == 0 else "heldout", "image"))
    # A held-out relation ('below' with a green first group) must be there too.
    out.append(parse("a green square below two small red triangles"))
    seen, unique = set(), []
    for p in out:
        t = format_prompt(p)
        if t not in seen:
            seen.add(t)
            unique.append(p)
    return unique


def video_prompts() -> list:
    """Every direction, one and two groups, train and held-out."""
    return [parse(t) for t in (
        "a red circle moving left",
        "a large blue square moving right",
        "two small green triangles moving up",
        "a yellow square and a purple circle moving down",
        "one white circle and two small red squares moving right",
        "a large purple triangle moving up",
        "three small blue circles and a green square moving left",
    )]


def other_color(rng, group: Group, others) -> str:
    taken = {group.color} | {g.color for g in others}
    return [c for c in COLORS if c not in taken][int(rng.integers(len(COLORS) - len(taken)))]


def other_shape(rng, group: Group, others) -> str:
    choices = [s for s in SHAPES if s != group.shape and all((group.color, s) != (g.color, g.shape) for g in others)]
    return choices[int(rng.integers(len(choices)))]


def with_group(p: Prompt, gi: int, g: Group) -> Prompt:
    groups = list(p.groups)
    groups[gi] = g
    return Prompt(p.form, tuple(groups), p.relation, p.motion)


def negatives(rng: np.random.Generator, scenes: list) -> list:
    """(scene index, prompt, violation, check) tuples, each prompt wrong in exactly one way."""
    image = [(i, parse(s.prompt)) for i, s in enumerate(scenes) if s.motion is None]
    out = []

    def pick(cands, k):
        idx = rng.permutation(len(cands))[:k]
        return [cands[j] for j in sorted(idx)]

    # Color and shape: a group of one object (so exactly one color / shape check can fail).
    singles = [(i, p, gi) for i, p in image for gi, g in enumerate(p.groups) if g.count == 1]
    for i, p, gi in pick(singles, 9):
        g = p.groups[gi]
        others = [h for j, h in enumerate(p.groups) if j != gi]
        q = with_group(p, gi, Group(g.count, g.size, other_color(rng, g, others), g.shape, g.word))
        out.append((i, q, "color", {"kind": "color", "group": gi}))
    for i, p, gi in pick(singles, 9):
        g = p.groups[gi]
        others = [h for j, h in enumerate(p.groups) if j != gi]
        q = with_group(p, gi, Group(g.count, g.size, g.color, other_shape(rng, g, others), g.word))
        out.append((i, q, "shape", {"kind": "shape", "group": gi}))
    # Count: one more or one fewer of a group.
    groups = [(i, p, gi) for i, p in image for gi in range(len(p.groups))]
    for i, p, gi in pick(groups, 8):
        g = p.groups[gi]
        n = {1: 2, 2: 3 if rng.random() < 0.5 else 1, 3: 2}[g.count]
        q = with_group(p, gi, Group(n, g.size, g.color, g.shape))
        out.append((i, q, "count", {"kind": "count", "group": gi}))
    # Relation swapped.
    rels = [(i, p) for i, p in image if p.form == "relation"]
    for i, p in pick(rels, 7):
        out.append((i, Prompt("relation", p.groups, OPPOSITE[p.relation]), "relation", {"kind": "relation", "group": None}))
    # Missing: a one-group scene, and a prompt that also names a group the image lacks (first or second).
    ones = [(i, p) for i, p in image if p.form == "single"]
    for k, (i, p) in enumerate(pick(ones, 7)):
        g = p.groups[0]
        extra = Group(1, None, other_color(rng, g, []), SHAPES[int(rng.integers(3))])
        if k % 2 == 0:
            q = Prompt("conjunction", (g, extra)) if k % 4 == 0 else Prompt("relation", (g, extra), RELATIONS[k % 4])
            out.append((i, q, "missing", {"kind": "count", "group": 1}))
        else:
            q = Prompt("relation", (extra, g), RELATIONS[k % 4]) if k % 4 == 1 else Prompt("conjunction", (extra, g))
            out.append((i, q, "missing", {"kind": "count", "group": 0}))
    # Video: moving the opposite way and sideways.
    videos = [(i, parse(s.prompt)) for i, s in enumerate(scenes) if s.motion is not None]
    for k, (i, p) in enumerate(videos[:3]):
        d = OPPOSITE[p.motion] if k < 2 else PERPENDICULAR[p.motion]
        out.append((i, Prompt("motion", p.groups, motion=d), "direction", {"kind": "motion", "group": None}))
    return out


def dumps_lines(obj: dict) -> str:
    """Compact JSON with one list item per line (readable diffs, small file)."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, list):
            body = ",\n".join(json.dumps(x, separators=(",", ":")) for x in v)
            parts.append(f"{json.dumps(k)}:[\n{body}\n]")
        else:
            parts.append(f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    rng = np.random.default_rng(SEED)
    prompts = coverage_prompts(rng) + video_prompts()
    scenes = [layout(p, rng) for p in prompts]
    pixels, scene_rows, offset = [], [], 0
    for i, s in enumerate(scenes):
        px = render_image(s) if s.motion is None else render_video(s)
        pixels.append(px.tobytes())
        scene_rows.append({"id": i, "kind": s.kind, "offset": offset, "bytes": px.size, **s.to_json()})
        offset += px.size
    cases = []
    for i, s in enumerate(scenes):
        cases.append({"prompt": s.prompt, "scene": i, "expect": "pass", "heldout": is_heldout(s.prompt)})
    for i, q, violation, check in negatives(rng, scenes):
        t = format_prompt(q)
        parse(t)  # a negative is still a grammatical prompt
        cases.append({"prompt": t, "scene": i, "expect": "fail", "violation": violation, "check": check,
                      "heldout": is_heldout(t)})
    doc = {
        "version": 1,
        "generator": "models/world/make_fixtures.py",
        "seed": SEED,
        "canvas": CANVAS,
        "frames": FRAMES,
        "step": STEP,
        "background": list(BACKGROUND),
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "radius": {"small": RADIUS["small"], "default": RADIUS[None], "large": RADIUS["large"]},
        "pixels": {"file": "world-pixels.bin.gz", "dtype": "uint8", "layout": "channels last, scenes back to back",
                   "bytes": offset},
        "scenes": scene_rows,
        "cases": cases,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "world-fixtures.json").write_text(dumps_lines(doc))
    (OUT / "world-pixels.bin.gz").write_bytes(gzip.compress(b"".join(pixels), compresslevel=9, mtime=0))
    n_pos = sum(c["expect"] == "pass" for c in cases)
    print(f"{len(scenes)} scenes ({sum(s.motion is not None for s in scenes)} videos), {n_pos} positive and "
          f"{len(cases) - n_pos} negative cases -> {OUT}")


if __name__ == "__main__":
    main()
