"""Self-check of the procedural world (run from the repository root):

    /usr/bin/python3 -m unittest models/world/test_world.py

Rendered scenes satisfy their prompts, read back from pixels with an independent little measurer (not
the TypeScript checker); the shapes' fill ratios sit inside WORLD.md's ranges; train and held-out are
disjoint by the rule; everything is reproducible, the committed fixtures included.
"""
from __future__ import annotations

import itertools
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np

from models.world import make_fixtures
from models.world.prompts import (COLORS, DIRECTIONS, RELATIONS, SHAPES, Group, Prompt, PromptError, fits,
                                  format_prompt, heldout_prompts, is_heldout, parse, sample_prompt)
from models.world.world import (BACKGROUND, PALETTE, VELOCITY, layout, make_dataset, render_image, render_video,
                                sample_scene, satisfies, to_model_floats)

# WORLD.md's fill-ratio ranges (as calibrated there).
FILL = {"square": (0.94, 1.0001), "circle": (0.70, 0.94), "triangle": (0.40, 0.65)}


def components(img: np.ndarray) -> list:
    """4-connected non-background components: dicts of color, area, bbox, centre (bbox), fill."""
    fg = np.any(img != np.array(BACKGROUND, dtype=np.uint8), axis=-1)
    seen = np.zeros_like(fg)
    out = []
    for y0, x0 in zip(*np.nonzero(fg)):
        if seen[y0, x0]:
            continue
        stack, pts = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pts.append((y, x))
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < 32 and 0 <= xx < 32 and fg[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
        ys, xs = np.array(pts).T
        colors = {tuple(int(v) for v in img[y, x]) for y, x in pts}
        w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        out.append({"colors": colors, "area": len(pts), "w": int(w), "h": int(h),
                    "cx": (xs.min() + xs.max() + 1) / 2, "cy": (ys.min() + ys.max() + 1) / 2,
                    "fill": len(pts) / (w * h), "mx": xs.mean() + 0.5, "my": ys.mean() + 0.5})
    return out


def shape_of(fill: float):
    return next((s for s, (lo, hi) in FILL.items() if lo <= fill < hi), None)


class PixelsMatchScene(unittest.TestCase):
    """What a renderer drew is what the scene says, and the scene is what the prompt says."""

    def check_frame(self, scene, frame, img):
        comps = components(img)
        self.assertEqual(len(comps), len(scene.objects), scene.prompt)
        by_centre = {}
        for c in comps:
            self.assertEqual(len(c["colors"]), 1, f"{scene.prompt}: mixed colors")
            by_centre[(c["cx"], c["cy"])] = c
        measured = {}
        for o in scene.objects:
            x, y = scene.centre(o, frame)
            # A triangle's bbox is one row short at the apex: its centre is half a pixel low.
            c = by_centre.get((x, y + (0.5 if o.shape == "triangle" else 0)))
            self.assertIsNotNone(c, f"{scene.prompt}: nothing drawn for {o} at frame {frame}")
            self.assertEqual(c["colors"], {PALETTE[o.color]})
            self.assertEqual(c["w"], 2 * o.radius)
            self.assertEqual(shape_of(c["fill"]), o.shape, f"{o.shape} r={o.radius} fill {c['fill']:.3f}")
            measured[o] = c
        p = parse(scene.prompt)
        if p.form == "relation":
            for a, b in itertools.product([o for o in scene.objects if o.group == 0],
                                          [o for o in scene.objects if o.group == 1]):
                ma, mb = measured[a], measured[b]
                gap = {"left of": mb["cx"] - ma["cx"], "right of": ma["cx"] - mb["cx"],
                       "above": mb["cy"] - ma["cy"], "below": ma["cy"] - mb["cy"]}[p.relation]
                self.assertGreaterEqual(gap, 2, scene.prompt)
        return comps

    def test_images(self):
        rng = np.random.default_rng(1)
        for split in ("train", "heldout"):
            for _ in range(150):
                scene = sample_scene(rng, split, "image")
                self.assertTrue(satisfies(scene, scene.prompt), scene.prompt)
                self.check_frame(scene, 0, render_image(scene))

    def test_videos(self):
        rng = np.random.default_rng(2)
        for split in ("train", "heldout"):
            for _ in range(40):
                scene = sample_scene(rng, split, "video")
                self.assertTrue(satisfies(scene, scene.prompt), scene.prompt)
                video = render_video(scene)
                self.assertEqual(video.shape, (8, 32, 32, 3))
                track = []
                for f in range(8):
                    comps = self.check_frame(scene, f, video[f])
                    area = sum(c["area"] for c in comps)
                    track.append((sum(c["mx"] * c["area"] for c in comps) / area,
                                  sum(c["my"] * c["area"] for c in comps) / area))
                vx, vy = VELOCITY[scene.motion]
                steps = np.diff(np.array(track), axis=0)
                np.testing.assert_allclose(steps, np.tile([2 * vx, 2 * vy], (7, 1)), atol=1e-9)

    def test_every_color_shape_size_renders_in_range(self):
        rng = np.random.default_rng(3)
        for color, shape, size in itertools.product(COLORS, SHAPES, ("small", None, "large")):
            scene = layout(Prompt("single", (Group(1, size, color, shape),)), rng)
            self.check_frame(scene, 0, render_image(scene))

    def test_wrong_prompts_are_not_satisfied(self):
        scene = layout("a red circle left of two blue squares", np.random.default_rng(4))
        self.assertTrue(satisfies(scene, "a red circle left of two blue squares"))
        for wrong in ("a red circle right of two blue squares", "a green circle left of two blue squares",
                      "a red square left of two blue squares", "a red circle left of three blue squares",
                      "a red circle", "a large red circle left of two blue squares"):
            self.assertFalse(satisfies(scene, wrong), wrong)


class Splits(unittest.TestCase):
    def test_train_and_heldout_are_disjoint_by_the_rule(self):
        for kind in ("image", "video"):
            train_px, train = make_dataset(300, "train", kind, seed=0)
            held_px, held = make_dataset(300, "heldout", kind, seed=0)
            self.assertFalse(any(is_heldout(t) for t in train), kind)
            self.assertTrue(all(is_heldout(t) for t in held), kind)
            self.assertFalse(set(train) & set(held))
            for t in train:
                p = parse(t)
                self.assertFalse({(g.color, g.shape) for g in p.groups}
                                 & {("purple", "triangle"), ("yellow", "square"), ("white", "circle")}, t)
                self.assertFalse(p.relation == "below" and p.groups[0].color == "green", t)
                self.assertEqual(p.kind, kind)

    def test_heldout_covers_every_combination(self):
        held = [parse(t) for t in heldout_prompts(400, seed=0)]
        objs = {(g.color, g.shape) for p in held for g in p.groups}
        for o in (("purple", "triangle"), ("yellow", "square"), ("white", "circle")):
            self.assertIn(o, objs)
        self.assertTrue(any(p.relation == "below" and p.groups[0].color == "green" for p in held))

    def test_heldout_prompts(self):
        a = heldout_prompts(50, seed=0)
        self.assertEqual(a, heldout_prompts(50, seed=0))
        self.assertNotEqual(a, heldout_prompts(50, seed=1))
        self.assertEqual(len(set(a)), 50)
        self.assertTrue(all(is_heldout(t) and fits(t) for t in a))
        v = heldout_prompts(20, seed=0, kind="video")
        self.assertTrue(all(parse(t).form == "motion" and is_heldout(t) for t in v))

    def test_rule_examples(self):
        self.assertTrue(is_heldout("a purple triangle"))
        self.assertTrue(is_heldout("two red circles and a yellow square"))
        self.assertTrue(is_heldout("a white circle moving up"))
        self.assertTrue(is_heldout("a green square below a red circle"))
        self.assertFalse(is_heldout("a red circle below a green square"))
        self.assertFalse(is_heldout("a green square above a red circle"))


class Grammar(unittest.TestCase):
    def test_round_trip(self):
        rng = np.random.default_rng(5)
        for kind in ("image", "video"):
            for split in ("train", "heldout"):
                for _ in range(200):
                    p = sample_prompt(rng, split, kind)
                    self.assertEqual(parse(format_prompt(p)), p)
        self.assertEqual(format_prompt(parse("one red circle")), "one red circle")

    def test_errors_name_the_word(self):
        for text, word in (("a purpel circle", "purpel"), ("four red circles", "four"), ("two red circle", "circle"),
                           ("a red", None), ("a red circle moving sideways", "sideways"),
                           ("a red circle left a blue square", "a")):
            with self.assertRaises(PromptError) as cm:
                parse(text)
            self.assertEqual(cm.exception.word, word, text)
            if word:
                self.assertIn(repr(word), str(cm.exception))

    def test_every_feasible_hard_prompt_lays_out(self):
        """FOOTPRINT_BUDGET calibration: crowded prompts under the budget always find a layout."""
        rng = np.random.default_rng(6)
        groups = [Group(n, s, c, "square") for n in (2, 3) for s in (None, "large") for c in ("red", "blue")]
        tried = 0
        for a, b in itertools.product(groups, groups):
            if a.color == b.color:
                continue
            forms = [Prompt("relation", (a, b), relation=r) for r in RELATIONS] + [Prompt("conjunction", (a, b))]
            forms += [Prompt("motion", (a, b), motion=d) for d in DIRECTIONS]
            for p in forms:
                if fits(p):
                    tried += 1
                    self.assertTrue(satisfies(layout(p, rng), p), format_prompt(p))
        self.assertGreater(tried, 50)


class Reproducible(unittest.TestCase):
    def test_make_dataset(self):
        x1, p1 = make_dataset(40, "train", "image", seed=7)
        x2, p2 = make_dataset(40, "train", "image", seed=7)
        self.assertEqual(x1.dtype, np.uint8)
        self.assertEqual(x1.shape, (40, 32, 32, 3))
        self.assertEqual(x1.tobytes(), x2.tobytes())
        self.assertEqual(p1, p2)
        x3, p3 = make_dataset(40, "train", "image", seed=8)
        self.assertNotEqual(p1, p3)
        v, _ = make_dataset(3, "heldout", "video", seed=7)
        self.assertEqual(v.shape, (3, 8, 32, 32, 3))
        f = to_model_floats(v)
        self.assertEqual(f.shape, (3, 8, 3, 32, 32))
        self.assertAlmostEqual(float(f.min()), 32 / 127.5 - 1, places=6)

    def test_fixtures_are_byte_identical_and_committed_ones_current(self):
        outs = []
        for _ in range(2):
            d = Path(tempfile.mkdtemp())
            with mock.patch.object(make_fixtures, "OUT", d), mock.patch("builtins.print"):
                make_fixtures.main()
            outs.append({f.name: f.read_bytes() for f in sorted(d.iterdir())})
        self.assertEqual(outs[0], outs[1])
        self.assertLess(sum(len(b) for b in outs[0].values()), 300_000)
        committed = make_fixtures.OUT
        if committed.exists():
            for name, data in outs[0].items():
                self.assertEqual((committed / name).read_bytes(), data,
                                 f"{name} is stale: rerun models/world/make_fixtures.py")


if __name__ == "__main__":
    unittest.main()
