"""PixelRNN: van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML
2016, with Row LSTM (section 3.1) or Diagonal BiLSTM (section 3.2) layers.

Each pixel's conditional is a 256-way softmax (a Bernoulli on binarised images) given the pixels
before it in raster order, as in variants/pixelcnn.py. The network: a 7×7 convolution with mask A
to 2h maps; recurrent layers, each one's h-map output widened to 2h by a 1×1 convolution and added
to its input (the residual connections of section 3.5); then the PixelCNN's 1×1 output layers.
Only one-channel images are modelled.

A Row LSTM layer processes the image row by row, computing its four gates for a whole row at once
from a 1×3 mask-B convolution along the row (input-to-state) plus a width-3 convolution over the
previous row's hidden state (state-to-state), so a pixel sees the triangle above it. A Diagonal
BiLSTM layer skews the map (row i shifted right by i) so that each column is a diagonal, and runs
an LSTM over the columns with a 1×1 input-to-state and a 2×1 state-to-state convolution: a pixel's
state sees the one above and the one to the left, hence every input above-left. A second LSTM runs
on the mirrored map (above-right); its output, shifted down a row so that no pixel sees its own row
to its right, is added to the first's. A pixel then sees every pixel before it but the previous
row's last, unless that one is within the 7×7 mask's reach (only the rows below see it: mask A).

Row LSTM sampling recomputes only the current row: each layer's hidden and cell states of the row
above are cached, and for every pixel of row r all layers rerun row r on the canvas filled so far.
The Diagonal BiLSTM has no such cache: it samples with one full pass per pixel.

Measured with the default config (h = 32, 2 layers) on one thread of a busy 2-core CPU, 28×28
images, for the categorical / Bernoulli output. Training step on 64 images: Row LSTM 0.76 / 0.45 s,
Diagonal BiLSTM 2.4 / 2.2 s. Sampling: Row LSTM 0.08 s per image in batches of 64 (784 full passes
would take ~3 s); Diagonal BiLSTM 11.6 / 10.9 s per image in batches of 4, about the same per image
in larger batches. The Diagonal BiLSTM's 2·(2W − 1) sequential LSTM steps per layer make it a model
for a GPU: on this CPU a 10k-sample evaluation would take more than a day.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, VariantConfig
from variants.likelihood import Output
from variants.pixelcnn import Autoregressive, MaskedConv2d, OutputHead, pixel

State = tuple[torch.Tensor, torch.Tensor]  # a row's hidden and cell states, each [N, h, W]


class RowLSTM(nn.Module):
    """One Row LSTM layer with its residual connection: [N, 2h, H, W] → [N, 2h, H, W]."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d("B", 2 * hidden, 4 * hidden, (1, 3))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 3, padding=1)
        self.widen = nn.Conv2d(hidden, 2 * hidden, 1)

    def cell(self, gates: torch.Tensor, state: State) -> State:
        """One row's LSTM update from its input-to-state gates [N, 4h, W] and the row above's state."""
        h, c = state
        i, f, o, g = (gates + self.state_to_state(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def initial_state(self, x: torch.Tensor) -> State:
        zeros = x.new_zeros(x.shape[0], self.hidden, x.shape[-1])
        return zeros, zeros

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every row's input-to-state gates in one convolution, split by `unbind` (see DiagonalLSTM).
        gates = self.input_to_state(x).unbind(2)
        state, rows = self.initial_state(x), []
        for row_gates in gates:
            state = self.cell(row_gates, state)
            rows.append(state[0])
        return x + self.widen(torch.stack(rows, dim=2))

    def step(self, x_row: torch.Tensor, above: State) -> tuple[torch.Tensor, State]:
        """The layer on one row [N, 2h, 1, W] given the state of the row above."""
        state = self.cell(self.input_to_state(x_row)[:, :, 0], above)
        return x_row + self.widen(state[0].unsqueeze(2)), state


def skew(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, C, H, W + H − 1], row i shifted right by i and zeros around it, so that
    column j holds the diagonal of pixels (i, j − i)."""
    n, channels, height, width = x.shape
    flat = F.pad(x, (0, height)).flatten(2)[:, :, : height * (width + height - 1)]
    return flat.reshape(n, channels, height, width + height - 1)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """`skew`'s inverse: [N, C, H, W + H − 1] → [N, C, H, W]."""
    n, channels, height, skewed_width = x.shape
    flat = F.pad(x.flatten(2), (0, height))
    return flat.view(n, channels, height, skewed_width + 1)[:, :, :, :width]


class DiagonalLSTM(nn.Module):
    """One direction of a Diagonal BiLSTM layer: an LSTM over the columns of the skewed input, left
    to right, [N, 2h, H, W] → [N, h, H, W]. The state at (i, j) sees the input at every (i', j')
    with i' ≤ i and j' ≤ j, its own position included."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        # Input-to-state: the paper's 1×1 convolution with mask B. Mask B only splits colour
        # channels, and one-channel images have none to split, so a plain 1×1 convolution.
        self.input_to_state = nn.Conv2d(2 * hidden, 4 * hidden, 1)
        # State-to-state: a 2×1 convolution down the previous column, so the cell at row i of
        # column j sees rows i − 1 and i of column j − 1: the pixels above it and left of it.
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        # Every column's input-to-state gates at once, split by `unbind`: its backward is one
        # `stack`, where indexing column j backpropagates a full-size map of zeros per column
        # (measured: a training step 3.5 times slower).
        gates = self.input_to_state(skew(x)).unbind(3)
        h = c = x.new_zeros(x.shape[0], self.hidden, height)
        columns = []
        for column_gates in gates:
            # Output k of the padded convolution sees rows k − 1 and k; the extra last one is dropped.
            recurrent = self.state_to_state(h)[:, :, :height]
            i, f, o, g = (column_gates + recurrent).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            columns.append(h)
        # Zero padding left of a row's start and (at row 0) above keeps the states there constant;
        # no pixel's state depends on those right of its row's end, so unskewing drops only them.
        return unskew(torch.stack(columns, dim=3), width)


class DiagonalBiLSTM(nn.Module):
    """One Diagonal BiLSTM layer (section 3.2) with its residual connection: [N, 2h, H, W] →
    [N, 2h, H, W]. Two diagonal LSTMs, one on the input mirrored so that it runs right to left."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.left_to_right = DiagonalLSTM(hidden)
        self.right_to_left = DiagonalLSTM(hidden)
        self.widen = nn.Conv2d(hidden, 2 * hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        right = self.right_to_left(x.flip(3)).flip(3)
        # The right-to-left state at (i, j) sees row i right of j, pixels still to come; shifted
        # down a row, (i, j) gets row i − 1's, which sees only rows above i.
        right = F.pad(right, (0, 0, 1, 0))[:, :, :-1]
        return x + self.widen(self.left_to_right(x) + right)


class PixelRNNNet(nn.Module):
    """Image [N, 1, H, W] in [-1, 1] → logits of every pixel given the pixels before it."""

    def __init__(
        self,
        hidden: int,
        n_layers: int,
        kind: Literal["bernoulli", "categorical"],
        cell: Literal["row_lstm", "diagonal_bilstm"],
    ) -> None:
        super().__init__()
        self.input = MaskedConv2d("A", 1, 2 * hidden, 7)
        layer = RowLSTM if cell == "row_lstm" else DiagonalBiLSTM
        self.layers = nn.ModuleList(layer(hidden) for _ in range(n_layers))
        self.head = OutputHead(2 * hidden, kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class PixelRNNConfig(VariantConfig):
    # LSTM state maps h per layer; 2h maps between layers (paper: h = 128 on CIFAR-10).
    hidden: Annotated[int, Field(gt=0)] = 32
    # Recurrent layers (paper: 12 on CIFAR-10).
    n_layers: Annotated[int, Field(ge=1)] = 2
    # Adam step size: a CPU-scale choice, not the paper's setting.
    lr: Annotated[float, Field(gt=0)] = 1e-3
    # Adam (β1, β2): Adam's defaults.
    betas: Betas = [0.9, 0.999]
    # Per-pixel distribution: "auto" is Bernoulli on binarised data, else the paper's 256-way softmax.
    output: Output = "auto"
    # Recurrent layer: the Row LSTM (section 3.1) or the Diagonal BiLSTM (3.2), which samples slowly.
    cell: Literal["row_lstm", "diagonal_bilstm"] = "row_lstm"


@VARIANTS.register("pixelrnn")
class PixelRNN(Autoregressive):
    paper = "van den Oord et al. 2016, Pixel Recurrent Neural Networks, Row LSTM / Diagonal BiLSTM"
    Config = PixelRNNConfig

    def __init__(self, cfg: PixelRNNConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.G = PixelRNNNet(cfg.hidden, cfg.n_layers, self.kind, cfg.cell).to(device)
        self._make_optimizer()

    def _pixel_logits(
        self, canvas: torch.Tensor, r: int, c: int, state: Any
    ) -> tuple[torch.Tensor, Any]:
        if self.cfg.cell == "diagonal_bilstm":
            # No cached sampler: each pixel takes one full pass, exact and slow. (A cached one could
            # advance the left-to-right states pixel by pixel, the right-to-left ones row by row.)
            return self._full_pass_logits(canvas, r, c, state)
        # `state`: every layer's states of the row above and of row r as last computed. The states
        # of a row computed for its last pixel are final (no state of row r sees pixel (r, W−1):
        # mask A, then masks B), so they become the row above at the next row's first pixel.
        if r == c == 0:
            above = [layer.initial_state(canvas) for layer in self.G.layers]
        else:
            above = state[1] if c == 0 else state[0]
        reach = self.G.input.kernel_size[0] // 2
        top = max(0, r - reach)
        x = self.G.input(canvas[:, :, top : r + 1])[:, :, -1:]  # row r of the first layer
        current = []
        for layer, layer_above in zip(self.G.layers, above, strict=True):
            x, layer_state = layer.step(x, layer_above)
            current.append(layer_state)
        return pixel(self.G.head(x[:, :, :, c : c + 1]), 0, 0), (above, current)
