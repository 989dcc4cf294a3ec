"""eval.batch_norm: evaluation puts the networks in the mode the suite names, leaves them as it
found them, and with running statistics gives numbers that do not depend on eval.batch_size."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.config import load_suite
from bench.datasets.base import DataSpec
from bench.registry import VARIANTS, load_all
from bench.results import TIMING_COLUMNS
from bench.runner import CellJob, run_cell
from bench.tasks.base import evaluation_mode

load_all()
REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TIMING = set(TIMING_COLUMNS)


def modes(module: torch.nn.Module, kind: type) -> set[bool]:
    return {m.training for m in module.modules() if isinstance(m, kind)}


@pytest.mark.parametrize("batch_norm", ["batch", "running"])
def test_evaluation_mode_sets_the_mode_and_restores_modes_and_statistics(batch_norm):
    torch.manual_seed(0)
    variant = VARIANTS.get("pix2pix")(
        VARIANTS.get("pix2pix").Config(ngf=4, ndf=4, d_layers=1), DataSpec((1, 8, 8), 10, (1, 8, 8)),
        CPU,
    )  # fmt: skip
    variant.D.eval()  # a network the variant itself left in eval mode stays so
    before = {name: {k: v.clone() for k, v in m.state_dict().items()}
              for name, m in (("G", variant.G), ("D", variant.D))}  # fmt: skip
    with evaluation_mode(variant, batch_norm):
        bn, dropout = torch.nn.BatchNorm2d, torch.nn.Dropout
        assert modes(variant.G, bn) == {batch_norm == "batch"}
        assert modes(variant.G, dropout) == {True}  # pix2pix samples with dropout either way
        variant.G(torch.randn(4, 1, 8, 8))  # in "batch" mode this moves the running statistics
    assert modes(variant.G, torch.nn.BatchNorm2d) == {True} and not variant.D.training
    for name, m in (("G", variant.G), ("D", variant.D)):
        for key, value in m.state_dict().items():
            assert torch.equal(value, before[name][key]), (name, key)


def test_running_mode_turns_dropout_off_for_a_variant_that_does_not_sample_with_it():
    variant = VARIANTS.get("dcgan")(VARIANTS.get("dcgan").Config(ngf=4, ndf=4),
                                    DataSpec((1, 8, 8)), CPU)  # fmt: skip
    variant.G.append(torch.nn.Dropout(0.5))  # a toy dropout layer
    with evaluation_mode(variant, "running"):
        assert modes(variant.G, torch.nn.Dropout) == {False}
    assert modes(variant.G, torch.nn.Dropout) == {True}


def cell_rows(tmp_path: Path, name: str, **eval_overrides) -> pd.DataFrame:
    """A tiny DCGAN cell on digits, evaluated every 3 steps; rows without timing columns."""
    suite = load_suite(str(REPO / "suites" / "ci.toml"), overrides={"eval.num_samples": "64",
                       "eval.num_real": "128"})  # fmt: skip
    eval_cfg = suite.spec.eval.model_dump() | {"every": 3, "kid_subsets": 2} | eval_overrides
    rows = []
    job = CellJob(
        cell_id=name, label="dcgan", variant="dcgan", config={"ngf": 4, "ndf": 4},
        dataset="digits", seed=0, gen_steps=6, batch_size=8, eval=eval_cfg,
        metrics=["fid", "kid"], device="cpu", cell_dir=str(tmp_path / name),
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert run_cell(job, lambda kind, p: rows.extend(p) if kind == "rows" else 0) == "ok"
    return pd.DataFrame([{k: v for k, v in r.items() if k not in TIMING} for r in rows])


def test_running_statistics_give_numbers_independent_of_the_evaluation_batch_size(tmp_path):
    whole = cell_rows(tmp_path, "running_4096", batch_norm="running")
    pieces = cell_rows(tmp_path, "running_7", batch_norm="running", batch_size=7)
    numbers = [c for c in whole.columns if c.startswith(("fid/", "kid/", "critic_loss"))]
    pd.testing.assert_frame_equal(pieces[numbers], whole[numbers], rtol=1e-4)
    # With batch statistics the batch size is part of the measurement: the numbers move.
    batch = cell_rows(tmp_path, "batch_4096")
    batch_pieces = cell_rows(tmp_path, "batch_7", batch_size=7)
    assert (batch["fid/lenet-digits"].iloc[1:] != batch_pieces["fid/lenet-digits"].iloc[1:]).all()
    assert (batch["fid/lenet-digits"].iloc[1:] != whole["fid/lenet-digits"].iloc[1:]).all()
    # Training never sees how it was evaluated: the losses are the same in all four cells.
    LOSSES = ["loss/critic", "loss/generator"]
    for other in (pieces, batch, batch_pieces):
        pd.testing.assert_frame_equal(other[LOSSES], whole[LOSSES], check_exact=True)
