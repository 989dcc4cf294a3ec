"""Piano rolls to music21 scores, MIDI files and pictures."""

from __future__ import annotations

import numpy as np
import pytest
from music21 import converter, midi

from bench.music_io import (
    TRACK_COLORS,
    RollNote,
    read_midi,
    roll_image,
    roll_notes,
    roll_to_score,
    save_roll_image,
    score_notes,
    write_midi,
)

LOW = 24  # MIDI pitch of index 0


def make_roll(tenor: bool = False) -> np.ndarray:
    """S: 72 for 4 steps then 74 for 2; A: 65 for 8 steps; T: empty (or 55 at step 20);
    B: 48 from step 14 to 17, across the bar line; plus a two-note chord in A at step 24."""
    roll = np.zeros((4, 2, 16, 84), dtype=bool)
    flat = roll.reshape(4, 32, 84)  # a view: steps run across bars
    flat[0, 0:4, 72 - LOW] = True
    flat[0, 4:6, 74 - LOW] = True
    flat[1, 0:8, 65 - LOW] = True
    flat[1, 24:28, [60 - LOW, 64 - LOW]] = True
    flat[3, 14:18, 48 - LOW] = True
    if tenor:
        flat[2, 20:22, 55 - LOW] = True
    return roll


def expected(tenor: bool = False) -> list[tuple[str, int, float, float]]:
    """The notes of `make_roll` as (part, MIDI pitch, offset, quarterLength)."""
    notes = [
        ("S", 72, 0.0, 1.0),
        ("S", 74, 1.0, 0.5),
        ("A", 65, 0.0, 2.0),
        ("A", 60, 6.0, 1.0),
        ("A", 64, 6.0, 1.0),
        ("B", 48, 3.5, 1.0),
    ]
    if tenor:
        notes.append(("T", 55, 5.0, 0.5))
    return sorted(notes)


def test_roll_notes_are_maximal_runs():
    notes = roll_notes(make_roll())
    assert notes[:2] == [RollNote(0, 72, 0, 4), RollNote(0, 74, 4, 2)]
    assert RollNote(3, 48, 14, 4) in notes  # one note across the bar line
    assert len(notes) == 6


def test_roll_to_score_parts_pitches_and_durations():
    score = roll_to_score(make_roll())
    assert [p.partName for p in score.parts] == ["S", "A", "T", "B"]
    assert score_notes(score) == expected()
    soprano = list(score.parts[0].flatten().notes)
    assert [n.pitch.midi for n in soprano] == [72, 74]
    assert [n.offset for n in soprano] == [0.0, 1.0]
    assert [n.quarterLength for n in soprano] == [1.0, 0.5]
    tenor = score.parts[2].flatten()
    assert not tenor.notes and tenor.highestTime == 8.0  # an empty track is a part of rests
    assert all(p.highestTime == 8.0 for p in score.parts)


def test_roll_to_score_rejects_mismatched_names():
    with pytest.raises(ValueError, match="track names"):
        roll_to_score(make_roll(), track_names=("S", "A"))


def test_midi_round_trip(tmp_path):
    path = tmp_path / "phrase.mid"
    write_midi(path, make_roll(tenor=True))
    assert len(converter.parse(path, forceSource=True).parts) == 4  # music21's default reader
    parsed = read_midi(path)
    assert [p.partName for p in parsed.parts] == ["S", "A", "T", "B"]
    assert score_notes(parsed) == expected(tenor=True)
    assert not list(tmp_path.glob(".*.tmp"))


def test_midi_round_trip_of_a_dense_random_roll(tmp_path):
    # Chords whose notes end at different times, notes across the bar line, every pitch range.
    roll = np.random.default_rng(0).random((4, 2, 16, 84)) < 0.03
    path = tmp_path / "random.mid"
    write_midi(path, roll)
    assert score_notes(read_midi(path)) == score_notes(roll_to_score(roll))
    assert len(score_notes(roll_to_score(roll))) == len(roll_notes(roll))


def test_midi_keeps_empty_track_but_music21_reads_no_part_for_it(tmp_path):
    path = tmp_path / "phrase.mid"
    write_midi(path, make_roll(tenor=False))
    mf = midi.MidiFile()
    mf.open(str(path))
    mf.read()
    mf.close()
    # A conductor track (tempo, time signature) and one track per voice, the empty tenor included.
    assert len(mf.tracks) == 5
    assert len(converter.parse(path, forceSource=True).parts) == 3
    parsed = read_midi(path)
    assert [p.partName for p in parsed.parts] == ["S", "A", "B"]
    assert score_notes(parsed) == expected()


def test_roll_image_shape_and_colours():
    rolls = np.stack([make_roll(), make_roll(tenor=True), make_roll()])
    picture = roll_image(rolls, max_phrases=2, step_px=4, pitch_px=1)
    assert picture.dtype == np.uint8
    assert picture.shape == (2 * 84 + 1, 32 * 4, 3)
    # Soprano alone on MIDI 72 during step 0: row 83 - 48 from the top, columns 0..3.
    assert tuple(picture[83 - (72 - LOW), 0]) == TRACK_COLORS[0]
    assert tuple(picture[83 - (48 - LOW), 14 * 4 + 1]) == TRACK_COLORS[3]
    assert tuple(picture[0, 0]) == (255, 255, 255)
    assert tuple(picture[0, 16 * 4]) != (255, 255, 255)  # the bar line
    assert tuple(picture[84, 0]) != (255, 255, 255)  # the separator
    assert roll_image(make_roll()).shape == (84, 128, 3)  # one phrase without a batch axis


def test_roll_image_blends_overlapping_tracks():
    roll = np.zeros((4, 1, 16, 84), dtype=bool)
    roll[[0, 3], 0, 0, 10] = True
    pixel = roll_image(roll)[83 - 10, 0].astype(float)
    assert np.allclose(pixel, (np.array(TRACK_COLORS[0]) + TRACK_COLORS[3]) / 2, atol=0.5)


def test_save_roll_image(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "rolls.png"
    save_roll_image(path, np.stack([make_roll()] * 3))
    assert plt.imread(path).shape[:2] == (3 * (3 * 84 + 2), 3 * 128)
