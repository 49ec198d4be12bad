"""``TrainConfig``: every training hyper-parameter, its source, and how presets override it.

Precedence (lowest first): dataclass defaults < ``--config FILE`` (TOML) < ``--set key=value`` <
explicit command-line flags. Unknown keys and type mismatches are errors, as in nanoGPT's
configurator, so a typo never silently trains with a default.

A resumed run starts from its recorded config instead of the defaults (:func:`resumed`): what is
given again must agree with it, except the keys in :data:`RESUME_MAY_CHANGE`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "configs"
PRESETS = ("paper", "reference_pytorch", "reference_lua", "smoke")
# Keys a resumed run may change. They set how far the run goes, how it reports and what the
# machine it now runs on can do, not what the decoder learns at a given step; every other key
# (data, model, optimiser, losses, seed) must agree with the run's recorded config, or the
# checkpoint would silently continue a different experiment.
RESUME_MAY_CHANGE = frozenset(
    {
        "max_steps",  # extend a run (or, at or below the checkpoint's step, just export it)
        "save_every",  # how often to checkpoint; no effect on the weights
        "log_every",  # how often to log scalars; no effect on the weights
        "sample_every",  # how often to log sample grids; no effect on the weights
        "num_workers",  # loader processes; batches are drawn by sample index, so they are equal
        # Arithmetic precision on this machine (bf16 needs an Ampere or newer GPU, "no" suits a
        # CPU). Weights and Adam state stay fp32 in the checkpoint either way, but the steps
        # after the change are no longer bit-for-bit those of an uninterrupted run.
        "mixed_precision",
        "output",  # a run folder moved elsewhere, or --resume CKPT continued in a new folder
        "resume",  # how this start finds its checkpoint, not part of the recipe
        # Validation only reports (train/validation.py draws no random numbers and touches no
        # weights), so a resumed run may start, stop or change it.
        "eval_every",
        "eval_content",
        "eval_style",
        "eval_size",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe of Huang & Belongie (ICCV 2017, Sec. 6.2) and its two reference codebases.

    Note:
        Deviations from pytorch-AdaIN: images keep their aspect ratio (shorter side to
        ``load_size``, then a random square crop) where the port squashes them to 512x512;
        unreadable or tiny images are skipped and counted instead of crashing the run.
    """

    # Data --------------------------------------------------------------------------------------
    content: list[str] = field(default_factory=list)  # folders/parquet shards; paper: MS-COCO
    style: list[str] = field(default_factory=list)  # folders/parquet shards; paper: WikiArt
    image_column: str = "image"  # parquet column with image bytes: huggan/wikiart, coco parquet
    load_size: int = 512  # shorter side after resizing; paper Sec. 6.2, both references
    crop_size: int = 256  # random square crop; paper Sec. 6.2, both references
    min_side: int = 32  # ours: images with a shorter side below this are skipped and counted
    num_workers: int = 4  # data-loader processes per training process; ours
    # Model -------------------------------------------------------------------------------------
    # "" = the default model's encoder; a vgg_normalised .pth/.t7; an adain folder or Hub id;
    # "torchvision" (ImageNet VGG-19, its own preprocessing); "random" (untrained, tests only).
    encoder: str = ""
    base_channels: int = 64  # VGG width; 64 in VGG-19, smaller only for tests ("random" encoder)
    # Optimisation ------------------------------------------------------------------------------
    batch_size: int = 8  # per process; paper Sec. 6.2, pytorch-AdaIN train.py, Lua train.lua
    lr: float = 1e-4  # Adam; pytorch-AdaIN train.py --lr, Lua train.lua -learningRate
    lr_decay: float = 5e-5  # lr_t = lr / (1 + lr_decay * t); pytorch-AdaIN adjust_learning_rate
    max_steps: int = 160_000  # pytorch-AdaIN --max_iter, Lua -maxIter
    content_weight: float = 1.0  # pytorch-AdaIN --content_weight, Lua -contentWeight
    style_weight: float = 10.0  # pytorch-AdaIN --style_weight; Lua uses 1e-2 with summed losses
    # "mean": MSE over channels (pytorch-AdaIN nn.MSELoss); "sum": summed over channels (Lua).
    style_reduction: str = "mean"
    autoencoder: bool = False  # ours: t = f(c) (alpha = 0), a sanity check for grey outputs
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (GPUs); Accelerate's option
    seed: int = 0  # ours; decoder initialisation, sample order and crops all derive from it
    # Run ---------------------------------------------------------------------------------------
    output: str = "runs/adain"  # run folder: config.toml, checkpoints, TensorBoard, model/
    save_every: int = 10_000  # steps; pytorch-AdaIN --save_model_interval
    log_every: int = 100  # steps between logged scalars; ours
    sample_every: int = 1_000  # steps between TensorBoard sample grids; ours
    # Validation (adain.evaluation): every eval_every steps (0: never), the decoder stylises
    # every eval_content x eval_style pair (files, folders, globs; shorter side eval_size px) and
    # the run logs the mean content/style losses and a grid. Ours.
    eval_every: int = 0
    eval_content: list[str] = field(default_factory=list)
    eval_style: list[str] = field(default_factory=list)
    eval_size: int = 256
    resume: str = ""  # "" = fresh run, "latest" = <output>/latest.pt if any, or a checkpoint path

    def validate(self) -> TrainConfig:
        """Check ranges; raise ``ValueError`` saying which key to fix."""
        positive = ("load_size", "crop_size", "batch_size", "max_steps", "base_channels")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("save_every", "log_every", "sample_every", "num_workers", "min_side",
                    "eval_every"):  # fmt: skip
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("lr", "lr_decay", "content_weight", "style_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.eval_every and not (self.eval_content and self.eval_style):
            raise ValueError("eval_every needs eval_content and eval_style (validation images)")
        if self.eval_size < 16:
            raise ValueError(f"eval_size must be >= 16 px, got {self.eval_size}")
        if self.crop_size > self.load_size:
            raise ValueError(
                f"crop_size {self.crop_size} is larger than load_size {self.load_size}: "
                "images are resized to load_size before cropping"
            )
        if self.crop_size % 8:
            raise ValueError(
                f"crop_size must be a multiple of 8 (three poolings), got {self.crop_size}"
            )
        if self.style_reduction not in ("mean", "sum"):
            raise ValueError(
                f"style_reduction must be 'mean' or 'sum', got {self.style_reduction!r}"
            )
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}"
            )
        return self


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _check_type(key: str, value: Any) -> Any:
    if key not in _FIELDS:
        raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(_FIELDS)}")
    kind = _FIELDS[key].type
    if kind == "list[str]":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    raise ValueError(f"config key {key!r} must be {kind}, got {type(value).__name__} {value!r}")


def override(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``values`` applied after key and type checks."""
    return replace(config, **{key: _check_type(key, value) for key, value in values.items()})


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``paper``, ``smoke``, ...) or a TOML file path -> the file."""
    if str(name_or_path) in PRESETS:
        return CONFIG_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"config {name_or_path} is neither a file nor a preset ({', '.join(PRESETS)})"
        )
    return path


def read_toml(path: str | Path) -> dict[str, Any]:
    """The key/value pairs of a TOML file (a flat table of TrainConfig keys), checked."""
    path = preset_path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    try:
        return {key: _check_type(key, value) for key, value in values.items()}
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Apply a TOML file (a flat table of TrainConfig keys) on top of ``base``."""
    return override(base or TrainConfig(), read_toml(path))


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["lr=5e-5", "content=[\\"a\\", \\"b\\"]"]`` -> values; TOML literals, bare strings."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes key=value, got {item!r}")
        if key not in _FIELDS:
            raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(_FIELDS)}")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()  # a bare word: only valid for string keys (checked next)
        values[key] = _check_type(key, value)
    return values


class ResumeError(ValueError):
    """A resumed run cannot continue as asked: a setting differs from the run's recorded one."""


def resumed(
    recorded: TrainConfig, source: str | Path, given: list[tuple[str, str, Any]]
) -> TrainConfig:
    """The recorded config of a run with the settings given again on resuming applied.

    Args:
        recorded: the config the run was started (or last resumed) with.
        source: the file ``recorded`` was read from, named in errors.
        given: ``(key, label, value)`` in rising precedence (``--config`` < ``--set`` < flags);
            ``label`` is how the user spelt it, e.g. ``"--base-channels 8"``.

    Raises:
        ResumeError: the winning value of a key outside :data:`RESUME_MAY_CHANGE` differs from
            the recorded one; the message names the option, both values and the way out.
    """
    winners = {key: (label, value) for key, label, value in given}  # a later entry wins
    for key, (label, value) in winners.items():
        value = _check_type(key, value)
        if key not in RESUME_MAY_CHANGE and value != getattr(recorded, key):
            raise ResumeError(
                f"{label} differs from the run's {key} {toml_value(getattr(recorded, key))} "
                f"({source}): drop it or start a new --output"
            )
    return override(recorded, {key: value for key, (_, value) in winners.items()})


def check_resumable(config: TrainConfig, recorded: dict[str, Any], source: str | Path) -> None:
    """Raise :class:`ResumeError` if ``config`` differs from a checkpoint's ``recorded`` config."""
    try:
        run = override(TrainConfig(), recorded)
    except ValueError as error:
        raise ValueError(f"{source}: recorded config: {error}") from None
    values = asdict(config)
    resumed(run, source, [(key, f"{key} {toml_value(v)}", v) for key, v in values.items()])


def to_toml(config: TrainConfig) -> str:
    """The resolved config as TOML that :func:`load_toml` reads back to an equal config."""
    lines = []
    for key, value in asdict(config).items():
        lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return "[" + ", ".join(toml_value(v) for v in value) + "]"
