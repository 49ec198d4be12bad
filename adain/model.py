"""The AdaIN model: frozen VGG-19 encoder + adaptive instance normalisation + trained decoder.

:class:`AdaIN` holds the weights and is the one path to the pixels: every entry point (the task
API, the command line, batches, sheets, comparisons) calls it, and it hands its layers to
:mod:`adain.engine`, which picks how to run them for the device and the image size. Loading
and saving live in :mod:`adain.loading`, the argument checks in :mod:`adain.checks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from adain.architecture import CONTENT_LAYER, DOWNSAMPLING
from adain.checks import MIN_SIDE as MIN_SIDE
from adain.checks import PreserveColor as PreserveColor
from adain.checks import _check_preserve_color as _check_preserve_color
from adain.checks import check_alpha as check_alpha
from adain.checks import check_image as check_image
from adain.checks import check_masks as check_masks
from adain.decoder import Decoder
from adain.efdm import Transfer, check_transfer
from adain.encoder import VGG19Encoder
from adain.engine import strips
from adain.engine.plan import StripPlan, plan_for_device, whole_plan
from adain.engine.runner import EngineOptions, Runner
from adain.functional import (
    EPS,
    coral,
    masks_to_cells,
    region_shares,
    transfer_luminance,
)
from adain.loading import WEIGHTS_NAME as WEIGHTS_NAME
from adain.loading import PretrainedMixin
from adain.style import StyleStats
from adain.weights.card import MODEL_CARD_TEMPLATE

PAPER_URL = "https://arxiv.org/abs/1703.06868"

StyleInput = Tensor | StyleStats


class AdaIN(
    nn.Module,
    PretrainedMixin,  # before the Hub mixin, so that its super() calls reach it
    PyTorchModelHubMixin,
    library_name="adain",
    paper_url=PAPER_URL,
    license="mit",
    pipeline_tag="image-to-image",
    tags=["style-transfer", "adain", "arbitrary-style-transfer"],
    model_card_template=MODEL_CARD_TEMPLATE,
):
    """Arbitrary style transfer with AdaIN (Huang & Belongie, ICCV 2017).

    ``AdaIN.from_pretrained(repo_id_or_dir)(content, style, alpha=0.8)`` stylises ``(B, 3, H, W)``
    RGB tensors in [0, 1] and returns ``(B, 3, H, W)`` at the content's size, unclamped.

    Args:
        encoder_depth: ``"relu5_1"`` keeps VGG-19 up to relu5_1 so the Gram path (Gatys et al.)
            can share the encoder; ``"relu4_1"`` is all AdaIN itself needs (14 MB less).
        base_channels: VGG width (64; smaller widths are for tests and experiments only).
        eps: variance epsilon of the feature statistics.

    Note:
        Statistics follow pytorch-AdaIN (unbiased variance + 1e-5, content and style), so converted
        release weights reproduce that port. Unlike both releases, inputs of any size are
        reflect-padded to a multiple of 8 and the output is cropped back, so the output size
        always equals the input size; ``alpha > 1`` extrapolates instead of raising.
    """

    def __init__(
        self,
        encoder_depth: str = "relu5_1",
        base_channels: int = 64,
        eps: float = EPS,
    ):
        super().__init__()
        self.encoder = VGG19Encoder(depth=encoder_depth, base_channels=base_channels)
        self.decoder = Decoder(base_channels=base_channels)
        self.eps = eps
        # How calls run (memory budget, strip height, precision); per call: ``engine=``.
        self.engine = EngineOptions()

    # Running --------------------------------------------------------------------------------

    def _differentiable(self, *inputs: Tensor) -> bool:
        """Whether autograd records this call: then it walks whole maps with the module's own
        weights (training, optimisation through the model); otherwise the engine runs it."""
        if not torch.is_grad_enabled():
            return False
        return any(t.requires_grad for t in inputs) or any(
            p.requires_grad for p in self.parameters()
        )

    def _runner(self, options: EngineOptions, differentiable: bool) -> Runner:
        return Runner(
            self.encoder,
            self.decoder,
            self.eps,
            device=None if differentiable else options.device,
            precision=options.precision,
            compile=options.compile,
            differentiable=differentiable,
        )

    def _plan(self, runner: Runner, shape: Sequence[int], options: EngineOptions) -> StripPlan:
        batch, _, height, width = shape
        if runner.differentiable:
            return whole_plan(height, width)
        budget = options.max_memory
        assert budget is None or isinstance(budget, int), "EngineOptions parses max_memory"
        return plan_for_device(
            runner.device, batch, height, width, runner.base_channels, budget, options.tile
        )

    # Parts ----------------------------------------------------------------------------------

    def encode(
        self,
        image: Tensor,
        layers: Sequence[str] = (CONTENT_LAYER,),
        *,
        engine: EngineOptions | None = None,
    ) -> dict[str, Tensor]:
        """VGG features ``{layer: (B, C, h, w)}`` of a ``(B, 3, H, W)`` image in [0, 1].

        relu4_1 alone runs on the engine (strips on the CPU); other layers, or a call autograd
        records, walk the encoder whole.
        """
        if tuple(layers) != (CONTENT_LAYER,) or self._differentiable(image):
            return self.encoder(image, layers)
        options = engine or self.engine
        runner = self._runner(options, differentiable=False)
        plan = self._plan(runner, image.shape, options)
        return {CONTENT_LAYER: strips.encode(runner, image, plan)}

    def decode(self, feats: Tensor, *, engine: EngineOptions | None = None) -> Tensor:
        """Image ``(B, 3, 8h, 8w)`` (unclamped) from relu4_1 features ``(B, C, h, w)``."""
        if self._differentiable(feats):
            return self.decoder(feats)
        options = engine or self.engine
        runner = self._runner(options, differentiable=False)
        batch, _, height, width = feats.shape
        shape = (batch, 3, height * DOWNSAMPLING, width * DOWNSAMPLING)
        return strips.decode(runner, feats, self._plan(runner, shape, options))

    def style_stats(
        self,
        style: Tensor,
        *,
        engine: EngineOptions | None = None,
        transfer: Transfer = "adain",
    ) -> StyleStats:
        """Encode a style image ``(B, 3, H, W)`` into its reusable relu4_1 statistics, in
        bounded memory at any size (the same numbers as a whole-image encoding).

        ``transfer="efdm"`` also keeps each channel's values sorted (:mod:`adain.efdm`), which
        takes the style's relu4_1 features in memory once.
        """
        check_image(style, "style")
        transfer = check_transfer(transfer)
        options = engine or self.engine
        runner = self._runner(options, self._differentiable(style))
        plan = self._plan(runner, style.shape, options)
        if transfer == "efdm":
            (mean, std), quantiles = strips.style_distribution(runner, style, plan)
            return StyleStats(mean, std, layer=CONTENT_LAYER, quantiles=quantiles)
        mean, std = strips.style_stats(runner, style, plan)
        return StyleStats(mean, std, layer=CONTENT_LAYER)

    def transfer(
        self,
        content_feats: Tensor,
        styles: Sequence[StyleStats],
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        masks: Tensor | None = None,
        transfer: Transfer = "adain",
    ) -> Tensor:
        """AdaIN (or EFDM) in feature space, with interpolation or spatial control, then the
        alpha blend.

        Args:
            content_feats: ``(B, C, h, w)`` relu4_1 content features.
            styles: one :class:`StyleStats` per style (batch 1 or B each).
            alpha: content-style trade-off, ``t = alpha * AdaIN(...) + (1 - alpha) * f(c)``.
            weights: interpolation weights, one per style (normalised to sum 1).
            masks: ``(B or 1, K, h, w)`` soft masks at feature resolution, one channel per style.
                Each position is shared between the styles in proportion to the masks; positions
                no mask covers keep the content features.
            transfer: ``"adain"`` or ``"efdm"`` (see :meth:`forward`).

        Returns:
            ``(B, C, h, w)`` target features ``t``.
        """
        alpha = check_alpha(alpha)
        transfer = check_transfer(transfer)
        stats = self._style_tensors(
            styles, weights, masks, content_feats.device, content_feats.dtype, transfer
        )
        share = None if masks is None else region_shares(masks.to(content_feats))
        return strips.transfer(content_feats, stats, alpha, share, self.eps, method=transfer)

    def _style_tensors(
        self,
        styles: Sequence[StyleStats],
        weights: Sequence[float] | None,
        masks: Tensor | None,
        device: torch.device,
        dtype: torch.dtype,
        transfer: Transfer = "adain",
    ) -> list[tuple[Tensor, Tensor]] | list[Tensor]:
        """Styles -> ``(mean, std)`` (EFDM: sorted values) on ``device``: one per region with
        ``masks``, else one mixture (``weights``, equal by default)."""
        if not styles:
            raise ValueError("give at least one style")
        channels = 8 * self.encoder.conv1_1.out_channels
        for stats in styles:
            if stats.channels != channels:
                what = (
                    f"style preset {stats.source} has" if stats.source else "style statistics have"
                )
                raise ValueError(
                    f"{what} {stats.channels} channels, this model's encoder {channels}: "
                    "encode the style with the same model"
                )
        if masks is not None:
            if weights is not None:
                raise ValueError("give either weights (interpolation) or masks (regions), not both")
            check_masks(masks, len(styles))
        if transfer == "efdm":
            for stats in styles:
                if stats.quantiles is None:
                    what = f"style preset {stats.source}" if stats.source else "these StyleStats"
                    raise ValueError(
                        f"{what} holds only AdaIN's mean and std, EFDM needs the sorted "
                        "features: encode it with transfer='efdm' (`adain style-encode "
                        "--transfer efdm`)"
                    )
        if masks is None and (len(styles) > 1 or weights is not None):
            styles = [StyleStats.mix(styles, weights or [1.0] * len(styles))]
        if transfer == "efdm":
            return [s.quantiles.to(device, dtype) for s in styles]  # type: ignore[union-attr]
        return [(s.mean.to(device, dtype), s.std.to(device, dtype)) for s in styles]

    # Whole pipeline -------------------------------------------------------------------------

    def forward(
        self,
        content: Tensor,
        style: StyleInput | Sequence[StyleInput],
        alpha: float = 1.0,
        *,
        weights: Sequence[float] | None = None,
        masks: Tensor | None = None,
        preserve_color: PreserveColor | None = None,
        engine: EngineOptions | None = None,
        content_stats: strips.StatsHook | None = None,
        transfer: Transfer = "adain",
    ) -> Tensor:
        """Stylise ``content`` with one or several styles.

        Args:
            content: ``(B, 3, H, W)`` RGB in [0, 1], any ``H, W >= 16``; on the model's device
                or, for images larger than the device holds, on the CPU (strips move over).
            style: a style image ``(B or 1, 3, h, w)`` in [0, 1], its :class:`StyleStats`, or a
                sequence of those for interpolation (``weights``) or spatial control (``masks``).
            alpha: content-style trade-off, any finite value >= 0 (paper eq. 14).
            weights: one float >= 0 per style, normalised to sum 1 (paper Sec. 7.3).
            masks: ``(B or 1, K, H', W')`` soft masks in [0, 1], one channel per style; resized to
                the content. Positions no mask covers keep the content.
            preserve_color: ``"coral"`` matches each style image's colour mean and covariance to
                the content before stylising; ``"luminance"`` keeps the content's chroma after.
            engine: how to run this call (memory budget, strip height, precision); default
                :attr:`engine`.
            content_stats: called as ``content_stats(region, mean, std)`` with the content's
                global relu4_1 statistics ``(B, C, 1, 1)`` of each region (one without
                ``masks``) before the transfer; the ``(mean, std)`` it returns are used instead
                (e.g. smoothed across video frames: :mod:`adain.video.temporal`).
            transfer: ``"adain"`` matches each content channel's mean and std to the style's
                (paper eq. 8); ``"efdm"`` its whole distribution (Exact Feature Distribution
                Matching, Zhang et al. 2022, :mod:`adain.efdm`), with the same decoder. Style
                statistics given for EFDM must hold quantiles (``style_stats(...,
                transfer="efdm")``).

        Returns:
            ``(B, 3, H, W)`` stylised image, not clamped to [0, 1].
        """
        check_image(content, "content")
        alpha = check_alpha(alpha)
        transfer = check_transfer(transfer)
        options = engine or self.engine
        runner = self._runner(options, self._differentiable(content))
        with runner.session():  # one allocator scope for the styles and the content
            styles = self._resolve_styles(style, content, preserve_color, options, transfer)
            stats = self._style_tensors(
                styles, weights, masks, runner.device, torch.float32, transfer
            )
            share = None
            if masks is not None:
                cells = [math.ceil(side / DOWNSAMPLING) for side in content.shape[2:]]
                masks = masks_to_cells(
                    masks.to(content.device), content.shape[2:], cells, DOWNSAMPLING
                )
                share = region_shares(masks)
            plan = self._plan(runner, content.shape, options)
            out = strips.run(
                runner,
                content,
                stats,
                alpha,
                share,
                plan,
                content_stats=content_stats,
                method=transfer,
            )
        if preserve_color == "luminance":
            out = transfer_luminance(out, content)
        return out

    def _resolve_styles(
        self,
        style: StyleInput | Sequence[StyleInput],
        content: Tensor,
        preserve_color: PreserveColor | None,
        options: EngineOptions,
        transfer: Transfer = "adain",
    ) -> list[StyleStats]:
        """Style images or statistics -> statistics, recolouring images first for ``"coral"``."""
        _check_preserve_color(preserve_color)
        styles = list(style) if isinstance(style, list | tuple) else [style]
        if not styles:
            raise ValueError("give at least one style")
        stats = []
        for item in styles:
            if isinstance(item, StyleStats):
                if preserve_color == "coral":
                    raise ValueError(
                        "preserve_color='coral' recolours the style image: pass images, not "
                        "StyleStats (or use preserve_color='luminance')"
                    )
                stats.append(item)
                continue
            image = check_image(item, "style")
            if preserve_color == "coral":
                image = coral(image.expand(content.shape[0], -1, -1, -1), content)
            stats.append(self.style_stats(image, engine=options, transfer=transfer))
        return stats

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder and the decoder."""
        return {
            "encoder": sum(p.numel() for p in self.encoder.parameters()),
            "decoder": sum(p.numel() for p in self.decoder.parameters()),
        }


def load_model(
    model: str | Path | None = None,
    revision: str | None = None,
    device: str | None = None,
) -> AdaIN:
    """Load a model from a folder or a Hub repository id: ``model``, else ``$ADAIN_MODEL``, else
    the default (:func:`adain.weights.hub.resolve_model_id`).

    Raises:
        ValueError: one line saying what was not found and what to do.
        OSError: the original-file fallback could not download.
    """
    from adain.weights.hub import resolve_model_id

    loaded = AdaIN.from_pretrained(resolve_model_id(model), revision=revision)
    return loaded.to(device) if device is not None else loaded
