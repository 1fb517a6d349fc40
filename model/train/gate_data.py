"""What the digit gate (`model.gate`) learns from and is fitted on, each image read back through the
service's own preprocessing: digits (MNIST's own images; upload-like renderings of them in the kinds
of `model.synth.renders`, on a table and framed; printed digits of the training font families)
against images with no digit (`model.synth.negatives`). Built in shards, one process each.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from model.imaging.errors import PreprocessError
from model.imaging.preprocess import preprocess
from model.synth import negatives
from model.synth.printed import printed
from model.synth.realworld import make_framed, make_table
from model.synth.renders import MAKERS, Maker

log = logging.getLogger("model.train.gate_data")

#: The kinds of digits rendered: model.synth.renders' and two more of model.synth.realworld's.
KINDS: dict[str, Maker] = {**MAKERS, "table": make_table, "framed": make_framed}
#: Kinds of negative made more often than the rest, this many times: those the gate learns last
#: (composed scenes: a bar or a ring among them is a 1 or a 0 once cut out; typed letters).
MORE = {"scene": 3.0, "typed": 2.0, "texture": 2.0}


@dataclass(frozen=True)
class Examples:
    images: np.ndarray  # (N, 28, 28) uint8, white ink on black, as the preprocessing made them
    digit: np.ndarray  # (N,) bool: holds a digit
    kinds: np.ndarray  # (N,) str: the kind of digit (model.synth.renders', "mnist", "printed") or "x_<negative kind>"
    lanes: np.ndarray  # (N,) str: the input lane each came by (model.imaging.preprocess.LANES)

    def __len__(self) -> int:
        return len(self.digit)


@dataclass(frozen=True)
class Shard:
    digits: np.ndarray  # (M, 28, 28) uint8: MNIST digits to draw from
    per_kind: int  # renderings of each kind, and twice as many MNIST and printed digits
    negatives: int  # negatives of each kind
    seed: int


def _build(shard: Shard) -> Examples:
    rng = np.random.default_rng(shard.seed)
    images: list[np.ndarray] = []
    kinds: list[str] = []
    lanes: list[str] = []

    def add(data: bytes, kind: str) -> None:
        try:
            pre = preprocess(data)
        except PreprocessError:  # no ink, several digits: the service never shows these to a network
            return
        images.append(pre.image)
        kinds.append(kind)
        lanes.append(pre.lane)

    for kind, make in KINDS.items():
        for i in rng.integers(len(shard.digits), size=shard.per_kind):
            add(make(shard.digits[i], rng)[0], kind)
    for i in rng.integers(len(shard.digits), size=2 * shard.per_kind):
        images.append(shard.digits[i].astype(np.float32) / 255)
        kinds.append("mnist")
        lanes.append("clean")
    for label in rng.integers(10, size=2 * shard.per_kind):
        slant = rng.uniform(-0.1, 0.3) if rng.random() < 0.4 else 0.0
        add(printed(str(label), rng, False, slant=slant)[0], "printed")
    for kind, negative in negatives.makers(np.random.default_rng(shard.seed + 50)).items():
        for _ in range(round(shard.negatives * MORE.get(kind, 1))):
            add(negative()[0], "x_" + kind)
    names = np.array(kinds)
    as_bytes = (np.stack(images) * 255).round().astype(np.uint8)
    return Examples(as_bytes, ~np.char.startswith(names, "x_"), names, np.array(lanes))


def examples(digits: np.ndarray, per_kind: int, negatives_per_kind: int, seed: int, shards: int = 2) -> Examples:
    """`shards` x (`per_kind` renderings of each of KINDS, 2 x `per_kind` MNIST digits and as many
    printed ones, `negatives_per_kind` of each kind of negative), drawn from `digits`; shard k seeded
    `seed * 100 + k`, each in its own process."""
    jobs = [Shard(digits, per_kind, negatives_per_kind, seed * 100 + k) for k in range(shards)]
    with ProcessPoolExecutor(max_workers=shards) as pool:
        parts = list(pool.map(_build, jobs))
    out = Examples(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("images", "digit", "kinds", "lanes")))
    log.info("gate examples (seed %d): %d digits, %d negatives", seed, out.digit.sum(), (~out.digit).sum())
    return out
