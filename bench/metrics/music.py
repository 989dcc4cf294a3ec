"""MuseGAN's music metrics (Dong et al., AAAI 2018, Tables 1 and 2), on binary piano rolls.

Rolls are numpy bool arrays [phrases, tracks, bars, steps, pitches]; pitch index i is MIDI note
`lowest_midi + i`. Written here in numpy because the packages that have them are not usable as they
are: pypianoroll 1.0.4's `n_pitch_classes_used` folds the 128 pitches into 12 runs of 10 neighbours
(C#4 with D4 counts one class; checked here), its `tonal_distance` fails with a shape error on two
one-track rolls, and muspy 0.5.0 cannot read music21 10's scores (muspy reading the MusicXML itself
cross-checks EB and UPC in the tests).

- EB, empty bars (%): bars of a track with no note, over every phrase's bars.
- UPC, used pitch classes per bar (0-12): pitch classes a track sounds in a bar, averaged over the
  bars where it sounds at all (the empty ones are EB's).
- QN, qualified notes (%): notes (maximal runs of one pitch in one track, across bar lines) at least
  `min_steps` steps long, over all notes. The paper's threshold is 3 steps of 96 per bar (a 32nd
  note); on a grid of 16 steps per bar every note passes it, so the harness's default is 3 steps of
  the data's own grid (a dotted eighth at 16 per bar): the column then separates sustained lines from
  fragments. The summary states the threshold in use.
- TD, tonal distance between two tracks (Harte, Sandler & Gasser 2006): each track's chroma in a bar
  (its steps summed per pitch class, normalised to sum 1) is mapped to a 6-D tonal centroid on three
  circles (fifths, minor thirds, major thirds, radii r1 = r2 = 1, r3 = 0.5); TD is the Euclidean
  distance of two tracks' centroids, averaged over the bars where both sound.
- DP (drum patterns) needs a drum track: the chorales have none, so it is never a number here.
- data_distance: how close the generated phrases are to the training data's. Each metric above is
  also taken per phrase (EB, UPC, QN per track, TD per pair), and each of those columns' generated
  distribution is compared with the training phrases' by the two-sample Kolmogorov-Smirnov
  statistic (0 = indistinguishable, 1 = disjoint; scale-free, so EB and TD weigh alike); the score
  is their mean. A column where no generated phrase has a value (a track never sounds) counts 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS

MUSIC = ("music",)
R1, R2, R3 = (
    1.0,
    1.0,
    0.5,
)  # Harte et al. 2006: radii of the fifths, minor-third, major-third circles


def empty_bars(rolls: np.ndarray) -> np.ndarray:
    """bool [N, tracks, bars]: the bar of a track has no note."""
    return ~rolls.any(axis=(3, 4))


def chroma(rolls: np.ndarray, lowest_midi: int = 24) -> np.ndarray:
    """float [N, tracks, bars, 12]: active steps per pitch class in each bar (C = 0)."""
    per_pitch = rolls.sum(axis=3, dtype=np.float64)
    out = np.zeros((*per_pitch.shape[:3], 12))
    for i in range(per_pitch.shape[-1]):
        out[..., (lowest_midi + i) % 12] += per_pitch[..., i]
    return out


def used_pitch_classes(rolls: np.ndarray, lowest_midi: int = 24) -> np.ndarray:
    """float [N, tracks, bars]: pitch classes used in each bar; NaN for an empty bar."""
    used = (chroma(rolls, lowest_midi) > 0).sum(-1).astype(np.float64)
    used[empty_bars(rolls)] = np.nan
    return used


def note_runs(rolls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every note: (phrase, track, length in steps) of each maximal run of one pitch, bars joined."""
    n, tracks, bars, steps, pitches = rolls.shape
    flat = rolls.reshape(n, tracks, bars * steps, pitches).transpose(0, 1, 3, 2)
    padded = np.pad(flat.astype(np.int8), ((0, 0), (0, 0), (0, 0), (1, 1)))
    edges = np.diff(padded, axis=-1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    # Both lists run in the same (phrase, track, pitch, time) order, so the k-th start ends k-th.
    return starts[0], starts[1], ends[3] - starts[3]


def qualified_notes(rolls: np.ndarray, min_steps: int) -> np.ndarray:
    """float [N, tracks]: the fraction of a phrase's notes in a track at least `min_steps` long;
    NaN where the track has no note."""
    phrase, track, length = note_runs(rolls)
    n, tracks = rolls.shape[:2]
    total = np.zeros((n, tracks))
    good = np.zeros((n, tracks))
    np.add.at(total, (phrase, track), 1)
    np.add.at(good, (phrase, track), length >= min_steps)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, good / total, np.nan)


def tonal_matrix() -> np.ndarray:
    """Harte et al.'s 6 × 12 projection of a chroma vector onto the tonal centroid space."""
    pc = np.arange(12)
    return np.stack([
        R1 * np.sin(pc * 7 * np.pi / 6), R1 * np.cos(pc * 7 * np.pi / 6),
        R2 * np.sin(pc * 3 * np.pi / 2), R2 * np.cos(pc * 3 * np.pi / 2),
        R3 * np.sin(pc * 2 * np.pi / 3), R3 * np.cos(pc * 2 * np.pi / 3),
    ])  # fmt: skip


def tonal_centroids(chroma_bars: np.ndarray) -> np.ndarray:
    """float [..., 6] of chroma [..., 12]; NaN where the chroma is all zero (nothing sounds)."""
    total = chroma_bars.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(total > 0, chroma_bars / total, np.nan)
    return normalised @ tonal_matrix().T


def tonal_distances(rolls: np.ndarray, lowest_midi: int = 24) -> dict[tuple[int, int], np.ndarray]:
    """Per track pair (i < j): float [N, bars] distance of their tonal centroids; NaN where either
    is silent."""
    centroids = tonal_centroids(chroma(rolls, lowest_midi))
    return {(i, j): np.linalg.norm(centroids[:, i] - centroids[:, j], axis=-1)
            for i, j in combinations(range(rolls.shape[1]), 2)}  # fmt: skip


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    with warnings.catch_warnings():  # an all-NaN slice is a NaN mean, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


@dataclass(frozen=True)
class MusicStats:
    """The music metrics of a set of phrases: the table values and the per-phrase values behind them."""

    table: dict[str, float]  # column → value: eb/S (%), upc/S, qn/S (%), td/S-A
    per_phrase: dict[str, np.ndarray]  # column → [N], NaN where the phrase has no value


def music_stats(
    rolls: np.ndarray, tracks: tuple[str, ...], min_steps: int, lowest_midi: int = 24
) -> MusicStats:
    """EB, UPC, QN per track and TD per track pair, as table values and per phrase."""
    table: dict[str, float] = {}
    per: dict[str, np.ndarray] = {}
    empty = empty_bars(rolls)
    upc = used_pitch_classes(rolls, lowest_midi)
    qn = qualified_notes(rolls, min_steps)
    phrase, track, length = note_runs(rolls)
    for t, name in enumerate(tracks):
        table[f"eb/{name}"] = 100 * float(empty[:, t].mean())
        per[f"eb/{name}"] = empty[:, t].mean(axis=1)
        table[f"upc/{name}"] = float(_nanmean(upc[:, t]))
        per[f"upc/{name}"] = _nanmean(upc[:, t], axis=1)
        notes = length[track == t]
        table[f"qn/{name}"] = 100 * float((notes >= min_steps).mean()) if len(notes) else np.nan
        per[f"qn/{name}"] = qn[:, t]
    for (i, j), dist in tonal_distances(rolls, lowest_midi).items():
        column = f"td/{tracks[i]}-{tracks[j]}"
        table[column] = float(_nanmean(dist))
        per[column] = _nanmean(dist, axis=1)
    return MusicStats(table, per)


def ks_distances(fake: MusicStats, real: MusicStats) -> dict[str, float]:
    """Per column, the Kolmogorov-Smirnov statistic of the per-phrase values; 1 where no generated
    phrase has a value (the training data always has one)."""
    out = {}
    for column, values in real.per_phrase.items():
        ours, theirs = fake.per_phrase[column], values
        ours, theirs = ours[~np.isnan(ours)], theirs[~np.isnan(theirs)]
        out[column] = (
            float(stats.ks_2samp(ours, theirs, method="asymp").statistic) if len(ours) else 1.0
        )
    return out


def _from_the_rolls(real, fake, dataset) -> float:  # noqa: ANN001
    raise NotApplicable("computed by the music task from binarised piano rolls")


@dataclass(frozen=True)
class MusicMetric(Metric):
    """A music metric: the music task computes them all at once (`music_columns`)."""


def music_columns(
    metrics: list[str], fake: MusicStats, real: MusicStats, tracks: tuple[str, ...]
) -> tuple[dict[str, float], list[str]]:
    """The row's columns of the named music metrics, and notes for those that have no value."""
    row: dict[str, float] = {}
    notes: list[str] = []
    for name in metrics:
        if name == "dp":
            row["dp"] = float("nan")
            notes.append("dp: drum patterns need a drum track, and these data have none "
                         f"(tracks {', '.join(tracks)})")  # fmt: skip
        elif name == "data_distance":
            ks = ks_distances(fake, real)
            row["data_distance"] = float(np.mean(list(ks.values())))
            for family in ("eb", "upc", "qn", "td"):
                row[f"ks/{family}"] = float(np.mean([v for c, v in ks.items()
                                                     if c.startswith(family + "/")]))  # fmt: skip
        else:
            for column, value in fake.table.items():
                if column.startswith(name + "/"):
                    row[column] = value
                    if np.isnan(value):
                        notes.append(f"{column}: no generated bar (or note) of that track to "
                                     "measure")  # fmt: skip
    return row, notes


def columns_of(name: str, tracks: tuple[str, ...]) -> list[str]:
    """The result columns metric `name` fills for data with `tracks`."""
    if name in ("eb", "upc", "qn"):
        return [f"{name}/{t}" for t in tracks]
    if name == "td":
        return [f"td/{a}-{b}" for a, b in combinations(tracks, 2)]
    if name == "data_distance":
        return ["data_distance", *(f"ks/{f}" for f in ("eb", "upc", "qn", "td"))]
    return [name]


MUSIC_METRICS = [
    MusicMetric("eb", _from_the_rolls, False, "empty bars per track (%), Dong et al. 2018", MUSIC),
    MusicMetric("upc", _from_the_rolls, False, "pitch classes used per non-empty bar per track "
                "(0-12); closeness to the data's value is what counts", MUSIC),
    MusicMetric("qn", _from_the_rolls, True, "qualified notes per track (%): notes at least "
                "eval.qn_min_steps steps long", MUSIC),
    MusicMetric("td", _from_the_rolls, False, "tonal distance per track pair (Harte et al. 2006 "
                "tonal centroids, r1 = r2 = 1, r3 = 0.5)", MUSIC),
    MusicMetric("dp", _from_the_rolls, True, "drum patterns (%): needs a drum track", MUSIC),
    MusicMetric("data_distance", _from_the_rolls, False, "mean Kolmogorov-Smirnov statistic of "
                "the per-phrase EB, UPC, QN and TD values against the training phrases'", MUSIC),
]  # fmt: skip
for _metric in MUSIC_METRICS:
    METRICS.add(_metric.name, _metric)
