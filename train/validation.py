"""Validation during training: the evaluation harness on a fixed set of pairs every N steps.

The decoder being trained and the frozen encoder are put in an :class:`adain.AdaIN` (shared,
not copied) and every ``eval_content`` x ``eval_style`` pair goes through the model call, as at
inference; :func:`adain.evaluation.harness.measure_pairs` measures each output with the paper's
losses. The means go to TensorBoard as ``eval/...`` scalars (and to ``metrics.jsonl``), the
outputs as a grid, so a run shows whether it improves by the paper's measures. It draws no
random numbers: a resumed run continues bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from adain.api import as_tensor
from adain.encoder import VGG19Encoder
from adain.evaluation.harness import mean_metrics, measure_pairs
from adain.inputs import expand_paths
from adain.model import AdaIN
from train.config import TrainConfig
from train.logs import RunLogger


def _square(image: Tensor, size: int) -> Tensor:
    """The centre ``size`` x ``size`` crop of an image whose shorter side is ``size``."""
    height, width = image.shape[2:]
    top, left = (height - size) // 2, (width - size) // 2
    return image[:, :, top : top + size, left : left + size]


class Validation:
    """The fixed validation pairs of a run, loaded once (a bad file fails before training)."""

    def __init__(self, config: TrainConfig):
        size = config.eval_size
        self.every = config.eval_every
        contents = expand_paths(config.eval_content, "eval_content")
        styles = expand_paths(config.eval_style, "eval_style")
        load = lambda path, what: _square(as_tensor(path, size, name=what), size)  # noqa: E731
        content_images = [load(path, "eval_content") for path in contents]
        style_images = [load(path, "eval_style") for path in styles]
        self.pairs = [(c, s) for c in content_images for s in style_images]

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    @torch.no_grad()
    def run(
        self, step: int, encoder: VGG19Encoder, decoder: torch.nn.Module, log: RunLogger
    ) -> dict[str, float]:
        """Stylise and measure every pair with the current decoder; log and return the means."""
        with torch.device("meta"):  # a shell: its own weights are replaced by the run's
            model = AdaIN(encoder_depth=encoder.depth, base_channels=encoder.conv1_1.out_channels)
        model.encoder, model.decoder = encoder, decoder
        device = next(decoder.parameters()).device
        pairs = [(c.to(device), s.to(device)) for c, s in self.pairs]
        records, outputs = measure_pairs(model, pairs, warm_up=False)
        means = {k: v for k, v in mean_metrics(records).items() if v is not None}
        log.validation(
            step,
            means,
            torch.cat([c for c, _ in self.pairs]),
            torch.cat([s for _, s in self.pairs]),
            torch.cat(outputs),
        )
        return means
