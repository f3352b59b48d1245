"""The procedural world of models/world/WORLD.md: scenes for prompts, and their pixels.

Python API (stable: the training scripts import it as `from models.world.world import ...`):

    make_dataset(n, split, kind, seed) -> (pixels, prompts)
        n samples of split 'train' (no held-out combination) or 'heldout' (at least one), kind 'image'
        or 'video'. pixels: uint8, [n, 32, 32, 3] for images, [n, 8, 32, 32, 3] for videos (channels
        LAST, as PIL wants); prompts: list of n prompt strings. Same arguments, same bytes.
    to_model_floats(pixels) -> float32, channels first ([..., 3, 32, 32]), in [-1, 1] (x / 127.5 - 1),
        the layout the models and the TypeScript checker (after (x + 1) / 2) see.
    sample_scene(rng, split, kind) -> Scene      one prompt and a layout for it
    layout(prompt, rng) -> Scene                 a layout satisfying `prompt` (Prompt or text); raises
                                                 LayoutError when none is found in MAX_LAYOUT_TRIES
    satisfies(scene, prompt) -> bool             the scene (geometry, not pixels) meets the prompt
    render_image(scene, frame=0) -> uint8 [32, 32, 3]
    render_video(scene) -> uint8 [8, 32, 32, 3]
    Scene.to_json() / Scene.from_json(d)         plain dict form (the fixtures use it)
    PALETTE, BACKGROUND                          name -> (r, g, b)

Coordinates: x grows right, y grows down; pixel (col, row) covers [col, col + 1) x [row, row + 1) and
belongs to a shape when its centre (col + 0.5, row + 0.5) is inside it. Object centres are integers (a
pixel corner), so a shape of radius r spans exactly 2r columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple, Union

import numpy as np

from .prompts import (CANVAS, FRAMES, STEP, Prompt, fits, format_prompt, parse, sample_prompt)

PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (155, 60, 205),
    "white": (240, 240, 240),
}
BACKGROUND = (32, 32, 32)

# Unit velocity per motion word (x right, y down); objects move STEP pixels per frame.
VELOCITY = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

# The sampler keeps related centres this far apart, 1 more than the contract's 2: a triangle's pixel
# bounding box is one row short at the apex, so its measured centre sits half a pixel below its geometric
# centre, and the checker must still see a gap of 2.
RELATION_GAP = 3
MAX_LAYOUT_TRIES = 400
PLACE_TRIES = 40


class LayoutError(RuntimeError):
    """No layout found for a prompt (too many large objects for the canvas)."""


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    radius: int
    x: int  # centre at frame 0
    y: int
    group: int  # index of the prompt group it belongs to


@dataclass(frozen=True)
class Scene:
    prompt: str
    objects: Tuple[Obj, ...]
    motion: Optional[str] = None  # direction for videos, None for images

    @property
    def kind(self) -> str:
        return "image" if self.motion is None else "video"

    def centre(self, obj: Obj, frame: int) -> Tuple[int, int]:
        if self.motion is None:
            return obj.x, obj.y
        vx, vy = VELOCITY[self.motion]
        return obj.x + STEP * frame * vx, obj.y + STEP * frame * vy

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "motion": self.motion,
                "objects": [{"color": o.color, "shape": o.shape, "radius": o.radius, "x": o.x, "y": o.y,
                             "group": o.group} for o in self.objects]}

    @staticmethod
    def from_json(d: dict) -> "Scene":
        return Scene(d["prompt"], tuple(Obj(**o) for o in d["objects"]), d.get("motion"))


@lru_cache(maxsize=None)
def shape_mask(shape: str, radius: int) -> np.ndarray:
    """Boolean [2r, 2r] patch of a shape centred on the patch's centre corner (pixel-centre rule)."""
    c = np.arange(2 * radius) + 0.5 - radius  # pixel-centre offsets from the object centre
    x, y = np.meshgrid(c, c)
    if shape == "square":
        m = (np.abs(x) < radius) & (np.abs(y) < radius)
    elif shape == "circle":
        m = x * x + y * y < radius * radius
    elif shape == "triangle":
        # Apex (0, -r), base from (-r, r) to (r, r): half-width grows by 1/2 per row of depth.
        m = (y < radius) & (np.abs(x) < (y + radius) / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m.setflags(write=False)
    return m


def _separated(a: Obj, ax: int, ay: int, b: Obj, bx: int, by: int) -> bool:
    # Bounding boxes at least one background pixel apart along x or y (so never 4- or 8-connected).
    d = a.radius + b.radius + 1
    return abs(ax - bx) >= d or abs(ay - by) >= d


def _bounds(r: int, motion: Optional[str]) -> Tuple[int, int, int, int]:
    """Inclusive ranges of the frame-0 centre keeping a radius-r object inside for every frame."""
    lo_x, hi_x, lo_y, hi_y = r, CANVAS - r, r, CANVAS - r
    if motion is not None:
        vx, vy = VELOCITY[motion]
        travel = STEP * (FRAMES - 1)
        lo_x, hi_x = lo_x - min(0, vx) * travel, hi_x - max(0, vx) * travel
        lo_y, hi_y = lo_y - min(0, vy) * travel, hi_y - max(0, vy) * travel
    return lo_x, hi_x, lo_y, hi_y


def _relation_ok(rel: str, a: Tuple[float, float], b: Tuple[float, float], gap: float) -> bool:
    if rel == "left of":
        return b[0] - a[0] >= gap
    if rel == "right of":
        return a[0] - b[0] >= gap
    if rel == "above":
        return b[1] - a[1] >= gap
    if rel == "below":
        return a[1] - b[1] >= gap
    raise ValueError(f"unknown relation {rel!r}")


def satisfies(scene: Scene, prompt: Union[Prompt, str], gap: float = 2) -> bool:
    """Geometric truth of the prompt for the scene: objects per group, inside the canvas every frame,
    pairwise separated, relation with centres `gap` apart, motion direction."""
    p = parse(prompt) if isinstance(prompt, str) else prompt
    if p.motion != scene.motion:
        return False
    for gi, g in enumerate(p.groups):
        objs = [o for o in scene.objects if o.group == gi]
        if len(objs) != g.count or any((o.color, o.shape, o.radius) != (g.color, g.shape, g.radius) for o in objs):
            return False
    if len(scene.objects) != sum(g.count for g in p.groups):
        return False
    for o in scene.objects:
        lo_x, hi_x, lo_y, hi_y = _bounds(o.radius, scene.motion)
        if not (lo_x <= o.x <= hi_x and lo_y <= o.y <= hi_y):
            return False
    objs = scene.objects
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            if not _separated(objs[i], objs[i].x, objs[i].y, objs[j], objs[j].x, objs[j].y):
                return False
    if p.form == "relation":
        for a in (o for o in objs if o.group == 0):
            for b in (o for o in objs if o.group == 1):
                if not _relation_ok(p.relation, (a.x, a.y), (b.x, b.y), gap):
                    return False
    return True


def layout(prompt: Union[Prompt, str], rng: np.random.Generator) -> Scene:
    """Rejection-sample object centres for the prompt (deterministic given rng's state).

    Relations are laid out by splitting the canvas at a random line between the two groups' regions, so
    the relation holds by construction and rejection only has to avoid overlaps."""
    p = parse(prompt) if isinstance(prompt, str) else prompt
    text = format_prompt(p)
    specs = [(gi, g) for gi, g in enumerate(p.groups) for _ in range(g.count)]
    # Largest first: they are the hard ones to fit, small ones slot into the gaps.
    order = sorted(range(len(specs)), key=lambda i: -specs[i][1].radius)
    for _ in range(MAX_LAYOUT_TRIES):
        ranges = [list(_bounds(g.radius, p.motion)) for _, g in specs]
        if p.form == "relation":
            axis = 0 if p.relation in ("left of", "right of") else 1
            # Group 0 lies on the low-coordinate side for 'left of' and 'above'.
            low_g = 0 if p.relation in ("left of", "above") else 1
            split = int(rng.integers(0, CANVAS - RELATION_GAP + 1))
            for i, (gi, _) in enumerate(specs):
                if gi == low_g:
                    ranges[i][2 * axis + 1] = min(ranges[i][2 * axis + 1], split)
                else:
                    ranges[i][2 * axis] = max(ranges[i][2 * axis], split + RELATION_GAP)
        if any(r[0] > r[1] or r[2] > r[3] for r in ranges):
            continue
        placed = {}
        for i in order:
            gi, g = specs[i]
            lo_x, hi_x, lo_y, hi_y = ranges[i]
            probe = Obj(g.color, g.shape, g.radius, 0, 0, gi)
            for _ in range(PLACE_TRIES):
                x = int(rng.integers(lo_x, hi_x + 1))
                y = int(rng.integers(lo_y, hi_y + 1))
                if all(_separated(probe, x, y, o, o.x, o.y) for o in placed.values()):
                    placed[i] = Obj(g.color, g.shape, g.radius, x, y, gi)
                    break
            else:
                break
        if len(placed) == len(specs):
            scene = Scene(text, tuple(placed[i] for i in range(len(specs))), p.motion)
            assert satisfies(scene, p, gap=RELATION_GAP), text
            return scene
    raise LayoutError(f"no layout for {text!r} in {MAX_LAYOUT_TRIES} tries")


def render_image(scene: Scene, frame: int = 0) -> np.ndarray:
    """uint8 [32, 32, 3]: background plus each object's filled shape at its frame position."""
    img = np.empty((CANVAS, CANVAS, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for o in scene.objects:
        x, y = scene.centre(o, frame)
        m = shape_mask(o.shape, o.radius)
        patch = img[y - o.radius:y + o.radius, x - o.radius:x + o.radius]
        if patch.shape[:2] != m.shape:
            raise ValueError(f"object {o} leaves the canvas at frame {frame}")
        patch[m] = PALETTE[o.color]
    return img


def render_video(scene: Scene) -> np.ndarray:
    """uint8 [8, 32, 32, 3]: the scene's frames (objects move STEP pixels per frame)."""
    return np.stack([render_image(scene, f) for f in range(FRAMES)])


def sample_scene(rng: np.random.Generator, split: str, kind: str) -> Scene:
    """A prompt of the split and kind and a layout for it (resamples the prompt in the rare case the
    layout fails, so the stream stays deterministic)."""
    while True:
        p = sample_prompt(rng, split, kind)
        try:
            return layout(p, rng)
        except LayoutError:
            continue


_SPLIT_ID = {"train": 0, "heldout": 1}
_KIND_ID = {"image": 0, "video": 1}


def make_dataset(n: int, split: str, kind: str, seed: int) -> Tuple[np.ndarray, list]:
    """n rendered samples and their prompts; (split, kind, seed) select an independent stream."""
    if split not in _SPLIT_ID:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if kind not in _KIND_ID:
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    rng = np.random.default_rng([seed, _SPLIT_ID[split], _KIND_ID[kind]])
    shape = (n, CANVAS, CANVAS, 3) if kind == "image" else (n, FRAMES, CANVAS, CANVAS, 3)
    pixels = np.empty(shape, dtype=np.uint8)
    prompts = []
    for i in range(n):
        scene = sample_scene(rng, split, kind)
        pixels[i] = render_image(scene) if kind == "image" else render_video(scene)
        prompts.append(scene.prompt)
    return pixels, prompts


def to_model_floats(pixels: np.ndarray) -> np.ndarray:
    """uint8 [..., 32, 32, 3] -> float32 [..., 3, 32, 32] in [-1, 1]."""
    x = pixels.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


__all__ = ["PALETTE", "BACKGROUND", "VELOCITY", "Obj", "Scene", "LayoutError", "layout", "satisfies",
           "render_image", "render_video", "sample_scene", "make_dataset", "to_model_floats", "shape_mask",
           "fits"]
