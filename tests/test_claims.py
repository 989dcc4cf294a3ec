"""Claims: declared in suite files, validated when the file loads, tested over seeds."""

import math

import pandas as pd
import pytest

from bench.claims import check
from bench.config import Claim, load_suite
from bench.errors import UsageError

from .conftest import TINY_SUITE


def final_rows(values: dict[str, list[float]], column: str = "fid/lenet-digits") -> pd.DataFrame:
    rows = [
        {"variant": v, "dataset": "digits", "seed": s, "status": "ok", column: x}
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


def claim(**fields) -> Claim:
    return Claim.model_validate({"metric": "fid/lenet-digits", "variant": "dcgan", "op": "<",
                                 "than": "gan", **fields})  # fmt: skip


def test_a_clear_difference_holds_and_its_reverse_does_not():
    final = final_rows({"dcgan": [10, 12, 11, 13, 9], "gan": [50, 55, 48, 60, 52]})
    holds = check(claim(), final, "digits")
    assert holds.holds is True and holds.p_value < 1e-4
    assert holds.variant.mean == pytest.approx(11.0) and holds.than.mean == pytest.approx(53.0)
    reverse = check(claim(op=">"), final, "digits")
    assert reverse.holds is False and reverse.p_value > 0.99
    assert "does NOT hold" in reverse.statement() and "Welch" in reverse.statement()


def test_overlapping_values_do_not_make_a_claim_hold():
    final = final_rows({"dcgan": [10, 30, 20, 25, 15], "gan": [12, 28, 22, 24, 18]})
    result = check(claim(), final, "digits")
    assert result.holds is False and 0.05 < result.p_value < 0.95


def test_a_claim_against_a_number_uses_a_one_sample_test():
    final = final_rows({"cgan": [0.8, 0.85, 0.9, 0.82, 0.88]}, "label_accuracy/lenet-digits")
    c = claim(metric="label_accuracy/lenet-digits", variant="cgan", op=">", than=0.5)
    assert check(c, final, "digits").holds is True
    assert check(c.model_copy(update={"than": 0.95}), final, "digits").holds is False


def test_values_without_spread_are_ordered_exactly():
    final = final_rows({"dcgan": [1.0] * 3, "gan": [2.0] * 3})
    assert check(claim(), final, "digits").p_value == 0.0
    assert check(claim(op=">"), final, "digits").holds is False


def test_a_claim_that_cannot_be_tested_says_why():
    final = final_rows({"dcgan": [10, 11], "gan": [50]})
    result = check(claim(), final, "digits")
    assert result.holds is None and "fewer than two" in result.reason and "gan" in result.reason
    missing = check(claim(metric="fid/inception"), final, "digits")
    assert missing.holds is None and "no column 'fid/inception'" in missing.statement()
    diverged = final.assign(status="diverged")
    assert check(claim(), diverged, "digits").holds is None
    assert math.isnan(result.p_value)


@pytest.mark.parametrize(
    ("claim_text", "message"),
    [
        ('metric = "energy_distance"\nvariant = "nope"\nop = "<"\nthan = "wgan"',
         "key 'claims[0].variant': no variant entry 'nope'; entries: wgan, wgan_gp"),
        ('metric = "energy_distance"\nvariant = "wgan"\nop = "<"\nthan = "other"',
         "key 'claims[0].than': no variant entry 'other'"),
        ('metric = "fid/lenet"\nvariant = "wgan"\nop = "<"\nthan = "wgan_gp"',
         "key 'claims[0].metric': 'fid/lenet' is not a column this suite fills"),
        ('metric = "energy_distance"\nvariant = "wgan"\nop = "<="\nthan = "wgan_gp"',
         "key 'claims[0].op'"),
        ('metric = "energy_distance"\nvariant = "wgan"\nop = "<"\nthan = "wgan_gp"\n'
         'dataset = "swissroll"', "key 'claims[0].dataset': entry 'wgan' does not train on"),
    ],
)  # fmt: skip
def test_a_malformed_claim_is_refused_when_the_suite_loads(write_suite, claim_text, message):
    path = write_suite(TINY_SUITE + "\n[[claims]]\n" + claim_text + "\n")
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(str(path))


def test_a_claim_on_a_diagnostic_column_loads(write_suite):
    path = write_suite(TINY_SUITE + '\n[[claims]]\nmetric = "clip_saturation"\nvariant = "wgan_gp"'
                       '\nop = "<"\nthan = "wgan"\n')  # fmt: skip
    (c,) = load_suite(str(path)).spec.claims
    assert c.describe() == "wgan_gp's clip_saturation is below wgan's"
