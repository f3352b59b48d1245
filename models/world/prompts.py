"""The prompt grammar of the procedural world (models/world/WORLD.md) and its held-out rule.

API (stable; training scripts and world.py depend on it):
    Group(count, size, color, shape, word=None) one noun phrase; size 'small', 'large' or None; word is the
                                                count word when it is 'one' (None: 'a' / 'two' / 'three')
    Prompt(form, groups, relation, motion)      form: 'single' | 'relation' | 'conjunction' | 'motion'
    parse(text) -> Prompt                       raises PromptError naming the offending word
    format_prompt(prompt) -> str                canonical text (parse(format_prompt(p)) == p)
    is_heldout(prompt) -> bool                  accepts a Prompt or text
    fits(prompt) -> bool                        the sampler's feasibility rule (objects can be laid out)
    sample_prompt(rng, split, kind) -> Prompt   split 'train' | 'heldout', kind 'image' | 'video'
    heldout_prompts(n=50, seed=0, kind='image') -> list[str]

The TypeScript twin is world/prompt-grammar.ts; both follow WORLD.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

COLORS = ("red", "green", "blue", "yellow", "purple", "white")
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")  # no size word = the default size
COUNT_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3}
RELATIONS = ("left of", "right of", "above", "below")
DIRECTIONS = ("left", "right", "up", "down")
FORMS = ("single", "relation", "conjunction", "motion")

# Radius per size word (None = no size word), as WORLD.md fixes them.
RADIUS = {"small": 3, None: 4, "large": 6}

# The held-out rule: no training prompt holds one of these objects (color + shape), nor the relation
# 'below' with a green first group.
HELDOUT_OBJECTS = frozenset({("purple", "triangle"), ("yellow", "square"), ("white", "circle")})
HELDOUT_RELATION = ("green", "below")

VOCABULARY = tuple(list(COUNT_WORDS) + list(SIZES) + list(COLORS) + list(SHAPES)
                   + [s + "s" for s in SHAPES] + ["left", "right", "of", "above", "below", "and",
                                                   "moving", "up", "down"])

CANVAS = 32
FRAMES = 8
STEP = 2  # pixels per frame of motion
# Feasibility budget: the objects' footprints (side 2r + 1, the shape plus its 1-pixel gap) may cover at
# most this fraction of the free area. Calibrated so every prompt under it lays out in a few hundred
# tries (see test_world.py); above it, three or four large objects often cannot be packed at all.
FOOTPRINT_BUDGET = 0.6


class PromptError(ValueError):
    """A prompt outside the grammar. `word` is the offending word (None at the end of the prompt)."""

    def __init__(self, message: str, word: Optional[str], position: int, prompt: str):
        super().__init__(f"{message} in prompt {prompt!r}; vocabulary: {' '.join(VOCABULARY)}")
        self.word = word
        self.position = position
        self.prompt = prompt


@dataclass(frozen=True)
class Group:
    count: int
    size: Optional[str]
    color: str
    shape: str
    # 'one' when the prompt says "one" rather than "a" (same meaning, different text); None otherwise.
    word: Optional[str] = None

    @property
    def radius(self) -> int:
        return RADIUS[self.size]

    def text(self) -> str:
        words = [self.word or {1: "a", 2: "two", 3: "three"}[self.count]]
        if self.size:
            words.append(self.size)
        words += [self.color, self.shape + ("s" if self.count > 1 else "")]
        return " ".join(words)


@dataclass(frozen=True)
class Prompt:
    form: str
    groups: Tuple[Group, ...]
    relation: Optional[str] = None
    motion: Optional[str] = None

    @property
    def kind(self) -> str:
        return "video" if self.form == "motion" else "image"

    def __str__(self) -> str:
        return format_prompt(self)


def format_prompt(p: Prompt) -> str:
    text = p.groups[0].text()
    if p.form == "relation":
        text += f" {p.relation} {p.groups[1].text()}"
    elif len(p.groups) == 2:
        text += f" and {p.groups[1].text()}"
    if p.form == "motion":
        text += f" moving {p.motion}"
    return text


def parse(text: str) -> Prompt:
    """Parse a prompt of WORLD.md's grammar (single spaces, lower case)."""
    words = text.split(" ")
    pos = 0

    def fail(what: str, at: int) -> None:
        """Refuse at word `at`: name it (or the word it should have followed) and what was expected."""
        if at >= len(words):
            msg = f"missing {what} after {words[-1]!r} at the end"
        elif words[at] == "":
            msg = f"empty word at position {at} (words are separated by single spaces)"
        elif words[at] not in VOCABULARY:
            msg = f"unknown word {words[at]!r} at position {at}, expected {what}"
        else:
            msg = f"unexpected word {words[at]!r} at position {at}, expected {what}"
        raise PromptError(msg, words[at] if at < len(words) else None, at, text)

    def group() -> Group:
        nonlocal pos
        if pos >= len(words) or words[pos] not in COUNT_WORDS:
            fail(f"a count ({', '.join(COUNT_WORDS)})", pos)
        count = COUNT_WORDS[words[pos]]
        word = "one" if words[pos] == "one" else None
        pos += 1
        size = None
        if pos < len(words) and words[pos] in SIZES:
            size = words[pos]
            pos += 1
        if pos >= len(words) or words[pos] not in COLORS:
            fail(f"a color ({', '.join(COLORS)})", pos)
        color = words[pos]
        pos += 1
        want = [s + ("s" if count > 1 else "") for s in SHAPES]
        if pos >= len(words) or words[pos] not in want:
            fail(f"a {'plural' if count > 1 else 'singular'} shape noun ({', '.join(want)})", pos)
        noun = words[pos]
        pos += 1
        return Group(count, size, color, noun[:-1] if count > 1 else noun, word)

    def direction() -> str:
        nonlocal pos
        if pos >= len(words) or words[pos] not in DIRECTIONS:
            fail(f"a direction ({', '.join(DIRECTIONS)})", pos)
        pos += 1
        return words[pos - 1]

    def end() -> None:
        if pos < len(words):
            fail("the end of the prompt", pos)

    first = group()
    if pos == len(words):
        return Prompt("single", (first,))
    w = words[pos]
    if w == "moving":
        pos += 1
        d = direction()
        end()
        return Prompt("motion", (first,), motion=d)
    if w == "and":
        pos += 1
        second = group()
        if pos < len(words) and words[pos] == "moving":
            pos += 1
            d = direction()
            end()
            return Prompt("motion", (first, second), motion=d)
        end()
        return Prompt("conjunction", (first, second))
    if w in ("left", "right"):
        if pos + 1 >= len(words) or words[pos + 1] != "of":
            fail("'of'", pos + 1)
        pos += 2
        second = group()
        end()
        return Prompt("relation", (first, second), relation=f"{w} of")
    if w in ("above", "below"):
        pos += 1
        second = group()
        end()
        return Prompt("relation", (first, second), relation=w)
    fail("'and', a relation or 'moving'", pos)
    raise AssertionError("unreachable")


def _as_prompt(p: Union[Prompt, str]) -> Prompt:
    return parse(p) if isinstance(p, str) else p


def is_heldout(prompt: Union[Prompt, str]) -> bool:
    """True iff the prompt holds a held-out object or a green-first 'below' relation (WORLD.md)."""
    p = _as_prompt(prompt)
    if any((g.color, g.shape) in HELDOUT_OBJECTS for g in p.groups):
        return True
    return p.form == "relation" and p.relation == HELDOUT_RELATION[1] and p.groups[0].color == HELDOUT_RELATION[0]


def fits(prompt: Union[Prompt, str]) -> bool:
    """The sampler's feasibility rule: total footprint within FOOTPRINT_BUDGET of the free area.

    For video the free area shrinks by the 14-pixel travel along the motion axis. Also requires the two
    groups to differ in color or shape, so the checker can tell them apart."""
    p = _as_prompt(prompt)
    if len(p.groups) == 2 and (p.groups[0].color, p.groups[0].shape) == (p.groups[1].color, p.groups[1].shape):
        return False
    area = CANVAS * CANVAS
    if p.form == "motion":
        area = CANVAS * (CANVAS - STEP * (FRAMES - 1))
    need = sum(g.count * (2 * g.radius + 1) ** 2 for g in p.groups)
    return need <= FOOTPRINT_BUDGET * area


# Sampling weights: few objects are more common, as in captioned data; 'a' is the usual word for one.
_COUNT_CHOICES = ("a", "one", "two", "three")
_COUNT_P = (0.45, 0.1, 0.3, 0.15)
_SIZE_CHOICES = ("small", None, "large")
_IMAGE_FORMS = ("single", "relation", "conjunction")
_IMAGE_FORM_P = (0.3, 0.4, 0.3)


def _sample_group(rng: np.random.Generator) -> Group:
    word = _COUNT_CHOICES[rng.choice(4, p=_COUNT_P)]
    size = _SIZE_CHOICES[rng.integers(3)]
    return Group(COUNT_WORDS[word], size, COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))],
                 "one" if word == "one" else None)


def _sample_any(rng: np.random.Generator, kind: str) -> Prompt:
    if kind == "image":
        form = _IMAGE_FORMS[rng.choice(3, p=_IMAGE_FORM_P)]
        if form == "single":
            return Prompt("single", (_sample_group(rng),))
        a, b = _sample_group(rng), _sample_group(rng)
        if form == "relation":
            return Prompt("relation", (a, b), relation=RELATIONS[rng.integers(4)])
        return Prompt("conjunction", (a, b))
    if kind == "video":
        groups = (_sample_group(rng),) if rng.random() < 0.5 else (_sample_group(rng), _sample_group(rng))
        return Prompt("motion", groups, motion=DIRECTIONS[rng.integers(4)])
    raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")


def sample_prompt(rng: np.random.Generator, split: str, kind: str) -> Prompt:
    """One prompt of the split ('train': not held out, 'heldout': held out) that fits the canvas.

    Rejection sampling from the grammar's distribution, so the held-out set has the grammar's own mix of
    forms, counts and sizes conditioned on containing a held-out combination."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    want = split == "heldout"
    while True:
        p = _sample_any(rng, kind)
        if fits(p) and is_heldout(p) == want:
            return p


def heldout_prompts(n: int = 50, seed: int = 0, kind: str = "image") -> list:
    """n distinct held-out evaluation prompts (text), drawn with a fixed seed."""
    rng = np.random.default_rng([seed, 0x4E1D])
    out, seen = [], set()
    while len(out) < n:
        t = format_prompt(sample_prompt(rng, "heldout", kind))
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out
