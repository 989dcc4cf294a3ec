"""Bach's four-part chorales as multi-track binary piano rolls, from the corpus inside music21's wheel.

MuseGAN (Dong et al., AAAI 2018) trains on Lakh Pianoroll, which cannot be had offline; the chorales
are what a widely used MuseGAN reimplementation trains on instead. Each chorale with exactly four
parts (soprano, alto, tenor, bass) in 4/4 throughout becomes a piano roll on a grid of 16 steps per
bar (a step is a sixteenth note) over 84 pitches, C1 (MIDI 24) to B7 (MIDI 107), and is cut into
phrases of 2 bars, counted from the first full bar (a pickup is dropped), without overlap; a last
incomplete phrase is dropped; repeat signs are not unfolded (each written bar once). A sample is a phrase [tracks 4, bars 2, steps 16, pitches 84] in
{-1, 1}. Like MuseGAN's rolls, they hold no onsets: a repeated note of one pitch reads as one long note.

The held-out split takes whole chorales (a fixed shuffle, 10% of them), so no chorale has phrases on
both sides. `jsb_chorales_c` transposes every chorale so that its key signature has no sharps or flats
(C major or A minor), by the smallest shift; `jsb_chorales` keeps the original keys.

Parsing every chorale takes about a minute here, so the rolls are built once and cached as `.npz`
under the cache folder, keyed by the music21 version and the grid settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.datasets.base import Dataset, DataSpec
from bench.io import atomic_write
from bench.registry import DATASETS

TRACKS = ("S", "A", "T", "B")
TRACK_NAMES = ("soprano", "alto", "tenor", "bass")
STEPS_PER_BAR = 16  # a sixteenth note per step in 4/4
LOWEST_MIDI = 24  # C1
PITCHES = 84  # C1–B7
PHRASE_BARS = 2
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 20180202  # the fixed shuffle of chorales into the two splits


@dataclass(frozen=True)
class Grid:
    """What a roll's array depends on besides the corpus: the cache key."""

    steps_per_bar: int = STEPS_PER_BAR
    lowest_midi: int = LOWEST_MIDI
    pitches: int = PITCHES
    phrase_bars: int = PHRASE_BARS


@dataclass
class Corpus:
    """Every usable chorale's phrases, and what was skipped and why."""

    rolls: np.ndarray  # bool [phrases, tracks, bars, steps, pitches]
    chorale: np.ndarray  # int [phrases]: index into `names`
    names: list[str]
    sharps: np.ndarray  # int [chorales]: the key signature of each chorale (flats negative)
    skipped: dict[str, int] = field(default_factory=dict)  # reason → chorales


def _phrases(score, grid: Grid) -> np.ndarray:  # noqa: ANN001 (a music21 Score)
    """The score's non-overlapping phrases from its first full bar, bool [n, tracks, bars, steps, p]."""
    bar_ql, step_ql = 4.0, 4.0 / grid.steps_per_bar
    first = score.parts[0].getElementsByClass("Measure")[0]
    pickup = first.duration.quarterLength if first.duration.quarterLength < bar_ql else 0.0
    bars = int((score.highestTime - pickup) // bar_ql)
    steps = bars * grid.steps_per_bar
    roll = np.zeros((len(score.parts), steps, grid.pitches), dtype=bool)
    for t, part in enumerate(score.parts):
        for note in part.flatten().notes:
            start = round((float(note.offset) - pickup) / step_ql)
            end = min(round((float(note.offset + note.quarterLength) - pickup) / step_ql), steps)
            if end <= max(start, 0):  # grace notes, and notes of the pickup
                continue
            for pitch in note.pitches:
                index = pitch.midi - grid.lowest_midi
                if not 0 <= index < grid.pitches:
                    raise ValueError(f"pitch {pitch.nameWithOctave} outside the grid")
                roll[t, max(start, 0) : end, index] = True
    per = grid.phrase_bars * grid.steps_per_bar
    n = steps // per
    roll = roll[:, : n * per].reshape(len(score.parts), n, grid.phrase_bars, grid.steps_per_bar, -1)
    return roll.transpose(1, 0, 2, 3, 4)


def parse_corpus(grid: Grid, limit: int | None = None) -> Corpus:
    """Parse music21's chorales (the first `limit` of them, for tests) into phrases."""
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))[:limit]
    rolls, chorale, kept, sharps = [], [], [], []
    skipped: dict[str, int] = {}
    for name in names:
        score = corpus.parse(name)
        meters = {ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")}
        reason = None
        if len(score.parts) != len(TRACKS):
            reason = f"not {len(TRACKS)} parts"
        elif meters != {"4/4"}:
            reason = "not in 4/4 throughout"
        else:
            try:
                phrases = _phrases(score, grid)
            except ValueError:
                reason = "a pitch outside C1-B7"
            else:
                if len(phrases) == 0:
                    reason = f"shorter than {grid.phrase_bars} full bars"
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        keys = list(score.recurse().getElementsByClass("KeySignature"))
        sharps.append(keys[0].sharps if keys else 0)
        rolls.append(phrases)
        chorale += [len(kept)] * len(phrases)
        kept.append(name)
    return Corpus(np.concatenate(rolls), np.array(chorale), kept, np.array(sharps), skipped)


def cached_corpus(grid: Grid, limit: int | None = None) -> Corpus:
    """`parse_corpus`, built once per music21 version, grid and limit and kept as `.npz`."""
    import music21

    from bench.metrics.images import default_cache_dir

    key = json.dumps({"music21": music21.__version__, **grid.__dict__, "limit": limit},
                     sort_keys=True)  # fmt: skip
    path = (
        default_cache_dir()
        / "music"
        / f"jsb_chorales-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    )
    if path.is_file():
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            return Corpus(np.unpackbits(f["rolls"], count=int(meta["size"])).astype(bool)
                          .reshape(meta["shape"]), f["chorale"], meta["names"], f["sharps"],
                          meta["skipped"])  # fmt: skip
    built = parse_corpus(grid, limit)
    meta = {"key": key, "shape": list(built.rolls.shape), "size": int(built.rolls.size),
            "names": built.names, "skipped": built.skipped}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez_compressed(
        f, rolls=np.packbits(built.rolls), chorale=built.chorale, sharps=built.sharps,
        meta=json.dumps(meta)))  # fmt: skip
    return built


def to_c(sharps: int) -> int:
    """The smallest shift in semitones that takes a key signature of `sharps` to none."""
    shift = (-7 * sharps) % 12
    return shift - 12 if shift > 6 else shift


class MusicDataset(Dataset):
    """Phrases of multi-track piano rolls, in {-1, 1}, with a held-out split of whole pieces."""

    kind = "music"
    binary = True
    tracks = TRACKS

    def __init__(self, name: str, corpus: Corpus, transpose: bool, grid: Grid) -> None:
        self.name, self.grid, self.transpose = name, grid, transpose
        rolls = corpus.rolls
        self.dropped_by_transposition = 0
        if transpose:
            rolls, keep = _transposed(
                rolls, np.array([to_c(s) for s in corpus.sharps])[corpus.chorale]
            )
            self.dropped_by_transposition = int((~keep).sum())
            rolls, chorale = rolls[keep], corpus.chorale[keep]
        else:
            chorale = corpus.chorale
        order = np.random.default_rng(SPLIT_SEED).permutation(len(corpus.names))
        held = set(order[: max(1, round(HELD_OUT_FRACTION * len(corpus.names)))].tolist())
        on_held = np.isin(chorale, sorted(held))
        self.splits = {"train": torch.from_numpy(rolls[~on_held]),
                       "held_out": torch.from_numpy(rolls[on_held])}  # fmt: skip
        self.chorale_ids = {"train": chorale[~on_held], "held_out": chorale[on_held]}
        self.chorales = {"train": len(corpus.names) - len(held), "held_out": len(held)}
        self.skipped = corpus.skipped
        self.shape = tuple(rolls.shape[1:])

    @property
    def spec(self) -> DataSpec:
        return DataSpec(self.shape, binary=True)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        train = self.splits["train"]
        idx = torch.randint(len(train), (n,), generator=generator)
        return train[idx].float() * 2 - 1

    def reference(self, split: str, n: int) -> torch.Tensor:
        """The first `n` phrases of `split` in a fixed shuffle (all of them if it has fewer), bool."""
        rolls = self.splits[split]
        order = torch.randperm(len(rolls), generator=torch.Generator().manual_seed(SPLIT_SEED))
        return rolls[order[:n]]

    def describe(self) -> str:
        """Where the phrases came from, and what was left out and why."""
        used = self.chorales["train"] + self.chorales["held_out"]
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        key = ("transposed to C major / A minor by key signature" if self.transpose
               else "in their original keys")  # fmt: skip
        text = (f"{used} chorales of music21's corpus used ({self.chorales['train']} train, "
                f"{self.chorales['held_out']} held out, no chorale on both sides), {key}; "
                f"skipped: {skipped}. Phrases of {self.grid.phrase_bars} bars x "
                f"{self.grid.steps_per_bar} steps x {self.grid.pitches} pitches x "
                f"{len(TRACKS)} tracks (S, A, T, B): {len(self.splits['train'])} train, "
                f"{len(self.splits['held_out'])} held out")  # fmt: skip
        if self.dropped_by_transposition:
            text += f"; {self.dropped_by_transposition} phrases dropped: transposed out of range"
        return text + "."


def _transposed(rolls: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every phrase shifted by its semitones; phrases that would leave the grid are flagged."""
    out = np.zeros_like(rolls)
    keep = np.ones(len(rolls), dtype=bool)
    for shift in np.unique(shifts):
        rows = np.flatnonzero(shifts == shift)
        moved = np.roll(rolls[rows], shift, axis=-1)
        wrapped = rolls[rows][..., -shift:] if shift > 0 else rolls[rows][..., :-shift]
        keep[rows] = ~wrapped.reshape(len(rows), -1).any(1) if shift else True
        out[rows] = moved
    return out, keep


class _Chorales:
    """A registered name's factory: its kind is known without parsing the corpus."""

    kind = "music"

    def __init__(self, name: str, transpose: bool) -> None:
        self.name, self.transpose = name, transpose
        key = "transposed to C major / A minor" if transpose else "in their original keys"
        self.__doc__ = (f"Bach's 4-part chorales from music21's corpus, {key}: 2-bar phrases, "
                        "16 steps per bar, 84 pitches, tracks S, A, T, B")  # fmt: skip

    def __call__(self, limit: int | None = None) -> MusicDataset:
        grid = Grid()
        return MusicDataset(self.name, cached_corpus(grid, limit), self.transpose, grid)

    def __repr__(self) -> str:
        return f"jsb chorales, transpose={self.transpose}"


DATASETS.add("jsb_chorales", _Chorales("jsb_chorales", False))
DATASETS.add("jsb_chorales_c", _Chorales("jsb_chorales_c", True))
