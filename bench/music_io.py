"""Piano rolls as music: a music21 score, a MIDI file, and a picture.

A roll is a bool array [tracks, bars, steps, pitches] for one phrase (a batch adds a leading N).
A step is 4 / steps_per_bar quarter notes in 4/4; pitch index 0 is MIDI note `lowest_midi`.
A note is a maximal run of active steps of one pitch in one track, so a note held across a bar
line stays one note, and two repeated notes with no gap between them read as one held note (the
roll cannot tell them apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from music21 import converter, instrument, meter, note, stream, tempo
from music21.midi.translate import music21ObjectToMidiFile

from bench.io import atomic_write_bytes

TRACK_NAMES = ("S", "A", "T", "B")
# S red, A green, T blue, B orange; further tracks cycle through the rest.
TRACK_COLORS = (
    (214, 39, 40),
    (44, 160, 44),
    (31, 119, 180),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
)
BACKGROUND = (255, 255, 255)
BAR_LINE = (190, 190, 190)
SEPARATOR = (64, 64, 64)


class RollNote(NamedTuple):
    """One note of a roll, in steps."""

    track: int
    midi: int
    start: int
    length: int


def roll_notes(roll: np.ndarray, lowest_midi: int = 24) -> list[RollNote]:
    """The notes of one roll [tracks, bars, steps, pitches], sorted by track, start and pitch."""
    tracks, bars, steps, pitches = roll.shape
    active = np.asarray(roll, dtype=bool).reshape(tracks, bars * steps, pitches)
    # A run starts where a step is on and the step before is off; it ends where the reverse holds.
    padded = np.pad(active, ((0, 0), (1, 1), (0, 0))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    notes = []
    for track, pitch in zip(*np.nonzero(active.any(axis=1)), strict=True):
        starts = np.flatnonzero(edges[track, :, pitch] == 1)
        ends = np.flatnonzero(edges[track, :, pitch] == -1)
        notes += [
            RollNote(int(track), lowest_midi + int(pitch), int(s), int(e - s))
            for s, e in zip(starts, ends, strict=True)
        ]
    return sorted(notes, key=lambda n: (n.track, n.start, n.midi))


def roll_to_score(
    roll: np.ndarray,
    track_names: Sequence[str] = TRACK_NAMES,
    lowest_midi: int = 24,
    steps_per_bar: int = 16,
    bpm: float = 100.0,
) -> stream.Score:
    """A 4/4 score with one named Part per track; gaps and empty tracks are filled with rests."""
    tracks, bars, steps, _ = roll.shape
    if steps != steps_per_bar:
        raise ValueError(f"roll has {steps} steps per bar, expected steps_per_bar={steps_per_bar}")
    if len(track_names) != tracks:
        raise ValueError(f"roll has {tracks} tracks but {len(track_names)} track names were given")
    step_ql = 4.0 / steps_per_bar
    parts = []
    for name in track_names:
        part = stream.Part(id=name)
        part.partName = name
        # The instrument's name becomes the MIDI track name, which names the part on import.
        voice = instrument.Instrument()
        voice.partName = name
        part.insert(0, voice)
        part.insert(0, meter.TimeSignature("4/4"))
        part.insert(0, tempo.MetronomeMark(number=bpm))
        parts.append(part)
    # Simultaneous notes of one track are inserted one by one at the same offset, not as chords.
    for n in roll_notes(roll, lowest_midi):
        element = note.Note(n.midi, quarterLength=n.length * step_ql)
        parts[n.track].insert(n.start * step_ql, element)
    score = stream.Score()
    for part in parts:
        part.makeRests(refStreamOrTimeRange=(0.0, bars * 4.0), fillGaps=True, inPlace=True)
        score.insert(0, part)
    return score


def write_midi(
    path: Path,
    roll: np.ndarray,
    track_names: Sequence[str] = TRACK_NAMES,
    lowest_midi: int = 24,
    steps_per_bar: int = 16,
    bpm: float = 100.0,
) -> None:
    """Write one roll as a MIDI file, atomically; the same bytes as `score.write("midi")`.

    Every track, an empty one too, becomes a named MIDI track. music21's reader makes parts only
    from tracks that hold notes, so it reads an empty track back as no part at all.
    """
    score = roll_to_score(roll, track_names, lowest_midi, steps_per_bar, bpm)
    atomic_write_bytes(Path(path), music21ObjectToMidiFile(score).writestr())


def read_midi(path: Path) -> stream.Score:
    """A MIDI file as a score, its notes at the times the file stores, one Part per track with notes.

    music21's default reader quantizes, and then misreads a track where notes that start together
    end at different times (it gives them swapped or shared durations); this reader does not. It
    also reads the file itself rather than music21's pickled copy in its temp folder, and makes none.
    """
    return converter.parse(Path(path), forceSource=True, quantizePost=False)


def score_notes(score: stream.Score) -> list[tuple[str, int, float, float]]:
    """(part name, MIDI pitch, offset, quarterLength) of every note, chords split, ties joined."""
    notes = []
    for part in score.stripTies().parts:
        for element in part.flatten().notes:
            notes += [
                (part.partName, p.midi, float(element.offset), float(element.quarterLength))
                for p in element.pitches
            ]
    return sorted(notes)


def roll_image(
    rolls: np.ndarray,
    max_phrases: int = 8,
    step_px: int = 4,
    pitch_px: int = 1,
    colors: Sequence[tuple[int, int, int]] = TRACK_COLORS,
) -> np.ndarray:
    """uint8 [H, W, 3] picture of up to `max_phrases` rolls stacked, high pitches at the top.

    Time runs left to right, with a grey line under the notes where each bar after the first
    begins. A pixel where several tracks sound takes the mean of their colours (S and B together
    make a brownish red, not either voice's colour). A 1-px dark row separates phrases.
    """
    rolls = np.asarray(rolls, dtype=bool)
    if rolls.ndim == 4:
        rolls = rolls[None]
    rolls = rolls[:max_phrases]
    n, tracks, bars, steps, pitches = rolls.shape
    palette = np.array([colors[t % len(colors)] for t in range(tracks)], dtype=np.float64)
    height, width = pitches * pitch_px, bars * steps * step_px
    picture = np.empty((n * (height + 1) - 1, width, 3), dtype=np.uint8)
    grid = np.full((height, width, 3), BACKGROUND, dtype=np.float64)
    grid[:, np.arange(1, bars) * steps * step_px] = BAR_LINE
    for i, roll in enumerate(rolls):
        # Pitch on rows with the highest pitch first, time on columns; notes are drawn over the grid.
        active = roll.reshape(tracks, bars * steps, pitches).transpose(0, 2, 1)[:, ::-1]
        count = active.sum(axis=0)
        mixed = np.einsum("tps,tc->psc", active, palette) / np.maximum(count, 1)[..., None]
        phrase = grid.copy()
        sounding = _upscale(count > 0, pitch_px, step_px)
        phrase[sounding] = _upscale(mixed, pitch_px, step_px)[sounding]
        top = i * (height + 1)
        picture[top : top + height] = np.round(phrase).astype(np.uint8)
        if i + 1 < n:
            picture[top + height] = SEPARATOR
    return picture


def _upscale(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Each element of `a`'s first two axes repeated into a rows × cols block."""
    return np.repeat(np.repeat(a, rows, axis=0), cols, axis=1)


def save_roll_image(path: Path, rolls: np.ndarray, max_phrases: int = 8) -> None:
    """Write `roll_image(rolls)` as a PNG, atomically."""
    # Imported here: bench.report pulls in pandas and the metrics, which MIDI writing never needs.
    from bench.report import save_png

    save_png(Path(path), roll_image(rolls, max_phrases))
