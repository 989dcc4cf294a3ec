"""The music task: MuseGAN's metrics against hand-computed fixtures and muspy, the chorale data set,
the TD sanity anchor, and the `musegan_bach` suite end to end on its smoke profile."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.datasets.music import Grid, _phrases, cached_corpus, parse_corpus, to_c
from bench.metrics.music import (
    chroma,
    ks_distances,
    music_columns,
    music_stats,
    note_runs,
    qualified_notes,
    tonal_distances,
    used_pitch_classes,
)
from bench.registry import DATASETS, load_all

load_all()
TRACKS = ("S", "A", "T", "B")
CHORALES = 40  # the first chorales of the corpus: enough phrases for the tests, parsed in seconds


def blank(n: int = 1) -> np.ndarray:
    return np.zeros((n, 4, 2, 16, 84), dtype=bool)


def hold(roll: np.ndarray, track: int, midi: int, start: int, length: int, phrase: int = 0) -> None:
    """A note of `length` steps from step `start` of the phrase (bars joined), pitch index midi-24."""
    flat = roll[phrase, track].reshape(32, 84)
    flat[start : start + length, midi - 24] = True
    roll[phrase, track] = flat.reshape(2, 16, 84)


@pytest.fixture(scope="module")
def chorales(cache, tmp_path_factory):
    import os

    old = os.environ.get("GAN_BENCH_CACHE")
    os.environ["GAN_BENCH_CACHE"] = str(cache)
    try:
        yield DATASETS.get("jsb_chorales")(limit=CHORALES)
    finally:
        os.environ.pop("GAN_BENCH_CACHE") if old is None else os.environ.update(GAN_BENCH_CACHE=old)


# --- Metrics on hand-made rolls ------------------------------------------------------------------


def test_empty_bars_and_used_pitch_classes_by_hand():
    roll = blank()
    hold(roll, 0, 60, 0, 4)  # S: C4 in bar 1
    hold(roll, 0, 64, 4, 4)  # S: E4 in bar 1
    hold(roll, 0, 72, 8, 2)  # S: C5 in bar 1, the same pitch class as C4
    hold(roll, 1, 67, 16, 16)  # A: G4 through bar 2 only
    # T empty; B: F2 across the bar line (steps 12-19) and B2 in bar 2
    hold(roll, 3, 41, 12, 8)
    hold(roll, 3, 47, 24, 4)
    stats = music_stats(roll, TRACKS, min_steps=3)
    assert stats.table["eb/S"] == 50 and stats.table["eb/A"] == 50
    assert stats.table["eb/T"] == 100 and stats.table["eb/B"] == 0
    upc = used_pitch_classes(roll)[0]
    assert upc[0, 0] == 2 and math.isnan(upc[0, 1])  # {C, E}; bar 2 empty
    assert upc[1, 1] == 1 and upc[3].tolist() == [1, 2]  # G; {F} then {F, B}
    assert stats.table["upc/S"] == 2 and stats.table["upc/B"] == 1.5
    assert math.isnan(stats.table["upc/T"])


def test_qualified_notes_count_runs_across_bar_lines():
    roll = blank()
    hold(roll, 0, 60, 0, 1)  # 1 step: not qualified
    hold(roll, 0, 62, 1, 2)  # 2 steps: not qualified
    hold(roll, 0, 64, 14, 4)  # 4 steps across the bar line: one note, qualified
    hold(roll, 0, 64, 20, 3)  # the same pitch again after a gap: a second note, qualified
    phrase, track, length = note_runs(roll)
    assert sorted(length.tolist()) == [1, 2, 3, 4] and set(track.tolist()) == {0}
    assert qualified_notes(roll, 3)[0, 0] == 0.5
    assert qualified_notes(roll, 1)[0, 0] == 1.0
    assert math.isnan(qualified_notes(roll, 3)[0, 1])  # no note in A
    assert music_stats(roll, TRACKS, min_steps=3).table["qn/S"] == 50


def test_tonal_distance_by_hand():
    # C against G (a fifth): the centroids of pitch classes 0 and 7 on Harte et al.'s circles.
    c = np.array([0, 1, 0, 1, 0, 0.5])
    g = np.array([math.sin(7 * 7 * math.pi / 6), math.cos(7 * 7 * math.pi / 6), 1.0, 0.0,
                  0.5 * math.sin(14 * math.pi / 3), 0.5 * math.cos(14 * math.pi / 3)])  # fmt: skip
    # By hand: sin(49π/6) = 1/2, cos = √3/2; sin(21π/2) = 1, cos = 0; sin(14π/3) = √3/2, cos = -1/2.
    assert g == pytest.approx([0.5, math.sqrt(3) / 2, 1, 0, math.sqrt(3) / 4, -0.25], abs=1e-12)
    expected = math.sqrt(0.25 + (math.sqrt(3) / 2 - 1) ** 2 + 1 + 1 + 3 / 16 + 0.75**2)
    assert np.linalg.norm(g - c) == pytest.approx(expected)
    roll = blank()
    hold(roll, 0, 60, 0, 16)  # S: C4, bar 1
    hold(roll, 3, 43, 0, 16)  # B: G2, bar 1
    hold(roll, 0, 72, 16, 16)  # S: C5, bar 2
    hold(roll, 3, 48, 16, 16)  # B: C3, bar 2 (the same pitch class: distance 0)
    td = tonal_distances(roll)[(0, 3)][0]
    assert td[0] == pytest.approx(expected) and td[1] == pytest.approx(0, abs=1e-12)
    assert math.isnan(tonal_distances(roll)[(0, 1)][0, 0])  # A is silent
    assert music_stats(roll, TRACKS, 3).table["td/S-B"] == pytest.approx(expected / 2)


def test_chroma_weighs_pitch_classes_by_duration():
    roll = blank()
    hold(roll, 2, 57, 0, 12)  # T: A3, 12 steps
    hold(roll, 2, 69, 12, 4)  # T: A4, 4 steps
    hold(roll, 2, 52, 0, 8)  # T: E3 under it
    bar = chroma(roll)[0, 2, 0]
    assert bar[9] == 16 and bar[4] == 8 and bar.sum() == 24


def test_drum_patterns_and_data_distance_say_why_or_measure():
    real = blank(3)
    for i in range(3):
        for t in range(4):
            hold(real, t, 48 + 4 * t + i, 0, 32, phrase=i)
    stats = music_stats(real, TRACKS, 3)
    row, notes = music_columns(["eb", "dp", "data_distance"], stats, stats, TRACKS)
    assert math.isnan(row["dp"]) and notes[0].startswith("dp: ") and "drum track" in notes[0]
    assert row["data_distance"] == 0 and row["ks/td"] == 0
    silent = music_stats(blank(3), TRACKS, 3)
    row, _ = music_columns(["data_distance"], silent, stats, TRACKS)
    # No generated note at all: EB is as far as it goes and the rest count as disjoint.
    assert row["ks/eb"] == 1 and row["ks/upc"] == 1 and row["data_distance"] == 1
    assert ks_distances(silent, stats)["td/S-A"] == 1


# --- The chorales --------------------------------------------------------------------------------


def test_chorales_are_four_tracks_with_a_split_by_piece(chorales):
    assert chorales.kind == "music" and chorales.shape == (4, 2, 16, 84)
    train, held = chorales.splits["train"], chorales.splits["held_out"]
    assert len(train) > 100 and len(held) > 0
    assert not set(chorales.chorale_ids["train"]) & set(chorales.chorale_ids["held_out"])
    x = chorales.sample(8, __import__("torch").Generator().manual_seed(0))
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    # Soprano above alto above tenor above bass, on average; one note at a time per voice mostly.
    heights = [(train[:, t].nonzero()[:, -1].float().mean()) for t in range(4)]
    assert heights == sorted(heights, reverse=True)
    text = chorales.describe()
    assert "skipped" in text and "not in 4/4" in text and str(len(held)) in text
    assert sum(chorales.skipped.values()) + sum(chorales.chorales.values()) == CHORALES


def test_the_cache_is_keyed_by_music21_version_and_grid(tmp_path, monkeypatch):
    import music21

    monkeypatch.setenv("GAN_BENCH_CACHE", str(tmp_path))  # a cache of its own: files are counted

    def files() -> list:
        return sorted((tmp_path / "music").glob("jsb_chorales-*.npz"))

    cached_corpus(Grid(), limit=4)
    assert len(files()) == 1
    again = cached_corpus(Grid(), limit=4)  # read back: no new file, the same phrases
    assert len(files()) == 1
    fresh = parse_corpus(Grid(), 4)
    assert np.array_equal(again.rolls, fresh.rolls) and again.names == fresh.names
    assert again.skipped == fresh.skipped and np.array_equal(again.sharps, fresh.sharps)
    cached_corpus(Grid(phrase_bars=1), limit=4)  # another grid: another file
    assert len(files()) == 2
    monkeypatch.setattr(music21, "__version__", "0.0.0-other")
    other = cached_corpus(Grid(), limit=4)  # another music21: parsed again, another file
    assert len(files()) == 3 and other.rolls.shape[1:] == (4, 2, 16, 84)


def test_transposition_takes_key_signatures_to_c():
    assert [to_c(s) for s in (0, 1, 2, 3, -1, -2, -3)] == [0, 5, -2, 3, -5, 2, -3]
    for sharps in range(-7, 8):  # the tonic of the major key of `sharps` lands on C
        assert (7 * sharps + to_c(sharps)) % 12 == 0 and -6 <= to_c(sharps) <= 6


def test_tonal_distance_of_real_chorales_is_below_tracks_shuffled_across_pieces(chorales):
    # MuseGAN's sanity anchor (Dong et al. 2018, Table 2): tracks of one piece agree tonally more
    # than tracks drawn from different pieces.
    real = chorales.splits["train"].numpy()
    rng = np.random.default_rng(0)
    shuffled = real.copy()
    for t in range(4):
        shuffled[:, t] = real[rng.permutation(len(real)), t]
    ours = music_stats(real, TRACKS, 3).table
    theirs = music_stats(shuffled, TRACKS, 3).table
    for pair in ("S-A", "S-T", "S-B", "A-T", "A-B", "T-B"):
        assert ours[f"td/{pair}"] < theirs[f"td/{pair}"], pair


@pytest.mark.parametrize("work", ["bwv40.8", "bwv351"])  # without and with a pickup bar
def test_empty_bars_and_pitch_classes_agree_with_muspy_reading_the_musicxml(work):
    # muspy reads the chorale's MusicXML itself; ours come from music21's parse on our grid. Chorales
    # without repeat signs: muspy unfolds repeats and the data set does not (each bar once).
    muspy = pytest.importorskip("muspy")
    from music21 import corpus

    path = corpus.getWork(work)
    ours = _phrases(corpus.parse(path), Grid(phrase_bars=1))  # [bars, tracks, 1, steps, pitches]
    music = muspy.read_musicxml(path)
    r = music.resolution
    first = music.barlines[1].time if music.barlines[1].time < 4 * r else 0  # after the pickup
    assert len(music.tracks) == 4
    for t, track in enumerate(music.tracks):
        bars = []
        for b in range(len(ours)):
            lo, hi = first + 4 * r * b, first + 4 * r * (b + 1)
            notes = [muspy.Note(time=max(n.time, lo) - lo, pitch=n.pitch,
                                duration=min(n.end, hi) - max(n.time, lo))
                     for n in track.notes if n.time < hi and n.end > lo]  # fmt: skip
            bars.append(muspy.Music(resolution=r, tracks=[muspy.Track(notes=notes)]))
        theirs_upc = [muspy.n_pitch_classes_used(m) for m in bars]
        assert np.nan_to_num(used_pitch_classes(ours)[:, t, 0]).tolist() == theirs_upc
        # The bars laid end to end, bar b at [b, b + 1) measures: muspy's empty-measure rate.
        whole = muspy.Music(resolution=r, tracks=[muspy.Track(notes=[
            muspy.Note(time=n.time + 4 * r * b, pitch=n.pitch, duration=n.duration)
            for b, m in enumerate(bars) for n in m.tracks[0].notes])])  # fmt: skip
        eb = music_stats(ours, TRACKS, 3).table[f"eb/{TRACKS[t]}"] / 100
        assert eb == pytest.approx(muspy.empty_measure_rate(whole, 4 * r))


# --- The suite end to end ------------------------------------------------------------------------


@pytest.mark.slow
def test_musegan_bach_smoke_writes_tables_midi_and_pictures(bench, cache, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from music21 import converter

    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    store = f"sqlite:///{tmp_path / 'store.db'}"
    rc, err = bench("run", "suite=musegan_bach", "profile=smoke", "seeds=0,1",
                    "entries=jamming,hybrid", f"tracking.uri={store}",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "run"
    final = pd.read_csv(run / "results.csv").groupby(["variant", "seed"]).tail(1)
    assert len(final) == 4 and (final["status"] == "ok").all()
    for column in ("eb/S", "upc/B", "qn/T", "td/S-B", "data_distance", "ks/td"):
        assert final[column].notna().all(), column
    assert final["dp"].isna().all() and final["note"].str.contains("drum").all()
    cell = run / "cells" / "hybrid__jsb_chorales__s0"
    assert sorted(p.name for p in (cell / "grids").iterdir()) == [
        "step_0000000.png", "step_0000002.png", "step_0000004.png"]  # fmt: skip
    midi = sorted((cell / "midi").glob("*.mid"))
    assert len(midi) == 4
    # An untrained generator's phrase sounds in every track, so all four parts come back.
    assert len(converter.parse(midi[0], forceSource=True).parts) == 4
    # The pictures and the MIDI files reach MLflow with the cell's run.
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    child = next(r for r in runs if r.info.run_name == "hybrid · jsb_chorales · seed 0")
    assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"grids", "midi"}
    assert len(client.list_artifacts(child.info.run_id, "midi")) == 4
    summary = (run / "summary.md").read_text()
    for text in ("### EB, empty bars (%)", "### TD, tonal distance between tracks",
                 "| training data |", "| held-out chorales |", "### Distance to the training data",
                 "The paper's finding", "drum track"):  # fmt: skip
        assert text in summary, text
    # The pair on the distance to the data is tested, whichever came out ahead.
    assert re.search(r"(hybrid|jamming) (vs|is better than) (jamming|hybrid)", summary)
