"""Where an :class:`~adain.model.AdaIN` gets its weights: model folders and Hub ids (strictly),
the originally released files, or random weights for trying the tools offline.

:class:`PretrainedMixin` holds the loading and saving so :mod:`adain.model` keeps to the model's
own work. It sits before ``PyTorchModelHubMixin`` in the model's bases: its ``super()`` calls
reach the Hub mixin, and the Hub mixin's class keywords stay on the model's class statement.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from adain.outputs import apply_umask
from adain.weights.folder import check_config

WEIGHTS_NAME = "model.safetensors"

if TYPE_CHECKING:
    # Only for the type checker: at run time the mixin is a plain class, so the Hub mixin's
    # __init_subclass__ runs once, on the model's class statement with its keywords.
    from huggingface_hub import PyTorchModelHubMixin as _HubMixin
else:
    _HubMixin = object


class PretrainedMixin(_HubMixin):
    """Loading and saving for a ``nn.Module`` that also inherits ``PyTorchModelHubMixin``."""

    if TYPE_CHECKING:  # nn.Module's methods, which the model's class inherits before these

        def eval(self) -> Self: ...
        def requires_grad_(self, requires_grad: bool = True) -> Self: ...
        def state_dict(self) -> dict[str, Any]: ...
        def named_modules(self) -> Iterator[tuple[str, nn.Module]]: ...
        def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any: ...

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        **model_kwargs: Any,
    ) -> Self:
        """Load from a model folder or a Hub id, resolved as :func:`~adain.model.load_model`
        resolves it.

        Folders load as they are; a Hub id is downloaded (or read from the cache, offline) with
        its original-file and default-model fallbacks (:func:`adain.weights.hub.fetch_model`).
        The model is built from the resolved folder's ``config.json`` and loads strictly
        (``strict=False`` allows missing or unexpected keys), for inference.

        Raises:
            ValueError: one line saying what was not found and what to do.
            OSError: the original-file fallback could not download.
        """
        from adain.weights.hub import resolve_model_folder

        folder = resolve_model_folder(
            pretrained_model_name_or_path, revision, cache_dir=cache_dir,
            force_download=force_download, token=token, local_files_only=local_files_only,
        )  # fmt: skip
        check_config(Path(folder) / "config.json")
        # The mixin reads config.json from the folder, then calls _from_pretrained on it.
        return super().from_pretrained(str(folder), **model_kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        # safetensors creates the file 0600 whatever the umask: others on a shared machine
        # could not read a model any other file of the folder lets them read.
        apply_umask(Path(save_directory) / WEIGHTS_NAME)

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: object,
    ) -> Self:
        # Replaces the mixin's loader, which defaults to strict=False (missing weights would stay
        # random without a word) and print()s to stdout. model_id is the folder from_pretrained
        # resolved: the download options were spent there.
        weights_file = os.path.join(model_id, WEIGHTS_NAME)
        if not os.path.isfile(weights_file):
            raise FileNotFoundError(
                f"{model_id} has no {WEIGHTS_NAME}: point to a folder written by "
                "save_pretrained() or `adain convert`"
            )
        try:  # before the model is built: a corrupt file fails at once
            state_dict = load_file(weights_file, device=str(map_location))
        except SafetensorError as error:
            raise ValueError(
                f"{weights_file} is not a readable safetensors file ({error}): download or "
                "convert the model again"
            ) from error
        model = cls(**model_kwargs)  # type: ignore[arg-type]
        model.load_checked(state_dict, source=weights_file, strict=strict)
        # Loaded for inference: nothing requires gradients, so calls run on the engine. To
        # fine-tune, call model.decoder.requires_grad_(True).
        return model.eval().requires_grad_(False)

    @classmethod
    def with_random_weights(
        cls, encoder_depth: str = "relu5_1", base_channels: int = 64, seed: int = 0
    ) -> Self:
        """A model with He-initialised random weights, for trying the tools offline: its
        outputs follow the inputs but are noise, not stylisations.

        PyTorch's default init shrinks activations layer after layer until the output is nearly
        flat; He init keeps them alive. The Caffe preprocessing stays exact.
        """
        model = cls(encoder_depth=encoder_depth, base_channels=base_channels).eval()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, nn.Conv2d) or name.endswith("preprocess"):
                    continue
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -0.1, 0.1, generator=generator)
                if name == "encoder.conv1_1":
                    module.weight.mul_(1 / 64.0)  # the Caffe-scaled input spans +-128
        return model.requires_grad_(False)

    def load_checked(
        self, state_dict: Mapping[str, Tensor], source: str | Path, strict: bool = True
    ) -> None:
        """``load_state_dict`` with one-line errors that name the file and the offending key."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if strict and missing:
            raise ValueError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing)")
        if strict and unexpected:
            raise ValueError(
                f"{source}: unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected); "
                "does config.json match the weights?"
            )
        for key, value in state_dict.items():
            if key in expected and value.shape != expected[key].shape:
                raise ValueError(
                    f"{source}: weight {key!r} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(expected[key].shape)}; does config.json match the weights?"
                )
        self.load_state_dict(state_dict, strict=strict)

    @classmethod
    def from_original(
        cls,
        vgg: str | Path,
        decoder: str | Path,
        encoder_depth: str = "relu5_1",
    ) -> Self:
        """Build a model from the released ``vgg_normalised`` and decoder files (.pth or .t7)."""
        from adain.weights.convert import load_original_state

        state, config = load_original_state(vgg, decoder, encoder_depth=encoder_depth)
        model = cls(**config)
        model.load_checked(state, source=f"{vgg} + {decoder}")
        return model.eval().requires_grad_(False)  # for inference, as from_pretrained
