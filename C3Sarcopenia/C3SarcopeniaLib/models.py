"""Networks and the model folder format (the presets are in presets.py).

A model folder holds ``model_card.json`` (what the model is, how and on what it was trained,
its held-out metrics) and one ``fold<i>.pt`` state dict per cross-validation fold.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from monai.networks.nets import UNet

from .errors import InputError
from .fileio import write_atomic, write_text_atomic
from .measures import MUSCLE_GROUPS
from .presets import PRESETS
from .shipped import models_dir

CARD_NAME = "model_card.json"


@dataclass
class ModelCard:
    """Everything needed to rebuild, apply and judge a trained ensemble."""

    stage: str
    preset: str
    spacing_mm: float
    patch_size: list[int]
    channels: list[int]
    strides: list[int]
    num_res_units: int
    folds: int = 5
    seed: int = 0
    iterations: int = 0
    command: str = ""
    trained_on: str = ""
    synthetic: bool = True
    training_cases: int = 0
    # Fine-tuning: the model folder each fold started from, and how that model was made.
    initialised_from: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Foreground classes, label 1 upwards; cards written before groups existed have one.
    classes: list[str] = field(default_factory=lambda: ["foreground"])

    @property
    def spatial_dims(self) -> int:
        return len(self.patch_size)

    @classmethod
    def from_preset(cls, stage: str, preset: str, **fields) -> "ModelCard":
        if (stage, preset) not in PRESETS:
            known = ", ".join(f"{s}/{p}" for s, p in PRESETS)
            raise InputError(f"no preset {preset!r} for stage {stage!r}; known: {known}.")
        classes = list(MUSCLE_GROUPS) if stage == "muscle" else ["c3_section"]
        return cls(stage=stage, preset=preset, **PRESETS[(stage, preset)], classes=classes,
                   **fields)

    def save(self, folder: Path) -> None:
        """The JSON the code reads, and MODEL_CARD.md for people, always in step."""
        write_text_atomic(folder / CARD_NAME, json.dumps(asdict(self), indent=2) + "\n")
        write_text_atomic(folder / "MODEL_CARD.md", self.markdown())

    def markdown(self) -> str:
        data = ("**Trained on synthetic neck CT phantoms, not on patients.** Its accuracy on "
                "phantoms says nothing about its accuracy on patients' CTs."
                if self.synthetic else "Trained on the data described below.")
        metrics = "\n".join(f"- {name}: `{json.dumps(value)}`"
                            for name, value in self.metrics.items()) or "- none recorded yet"
        notes = "\n".join(f"- {note}" for note in self.notes)
        return f"""# Model card: {self.stage} stage ({self.preset} preset)

{data}

| | |
|---|---|
| stage | {self.stage} ({'3D C3 section' if self.stage == 'section' else '2D skeletal muscle'}) |
| classes | {', '.join(self.classes)} |
| network | MONAI residual UNet, channels {self.channels}, strides {self.strides}, \
{self.num_res_units} residual unit(s), instance norm |
| grid | {self.spacing_mm} mm isotropic, patches {self.patch_size} |
| ensemble | {self.folds}-fold cross-validation, per-voxel majority vote |
| iterations per fold | {self.iterations} |
| training data | {self.trained_on} ({self.training_cases} cases) |
| seed | {self.seed} |
| command | `{self.command}` |
{self._initialisation_row()}

## Metrics
{metrics}

## Notes
- Architecture details beyond the paper's text (channels, strides, residual units) are our
  assumption: the appendix of Naser et al. 2022 was not available.
{notes}
"""

    def _initialisation_row(self) -> str:
        """The chain of models this one was fine-tuned from, nearest first."""
        steps, source = [], self.initialised_from
        while source:
            steps.append(f"`{source['folder']}`: {source['iterations']} iterations per fold on "
                         f"{source['trained_on']} ({source['training_cases']} cases), command "
                         f"`{source['command']}`")
            source = source.get("initialised_from")
        chain = "; itself initialised from ".join(steps) or "random weights"
        return f"| initialised from | {chain} |"

    @classmethod
    def load(cls, folder: Path) -> "ModelCard":
        path = folder / CARD_NAME
        if not path.is_file():
            raise InputError(f"{folder} is not a model folder (no {CARD_NAME}): point --models "
                             "to a folder made by 'c3sarcopenia train'.")
        return cls(**json.loads(path.read_text()))


def build_unet(card: ModelCard) -> torch.nn.Module:
    """MONAI residual UNet: one CT channel in, background and each class out."""
    return UNet(spatial_dims=card.spatial_dims, in_channels=1, out_channels=len(card.classes) + 1,
                channels=card.channels, strides=card.strides,
                num_res_units=card.num_res_units, norm="instance")


def resolve_device(name: str | None = None) -> torch.device:
    """'cuda' when asked for or when present and nothing was asked; the CPU otherwise."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("the CUDA GPU device was chosen but no CUDA GPU is available: choose "
                         "the CPU (or 'auto') as the device.")
    return torch.device(name)


@dataclass
class Ensemble:
    """The folds of one stage, loaded and ready for inference."""

    card: ModelCard
    nets: list[torch.nn.Module]
    device: torch.device
    folder: Path


def fold_weights_path(folder: Path, fold: int) -> Path:
    return folder / f"fold{fold}.pt"


def save_fold_weights(net: torch.nn.Module, folder: Path, fold: int) -> None:
    """Half-precision weights: the shipped ensembles stay small, accuracy is unchanged."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    write_atomic(fold_weights_path(folder, fold), lambda tmp: torch.save(state, tmp))


def load_ensemble(folder: str | Path, device: str | None = None,
                  n_folds: int | None = None) -> Ensemble:
    """Load a model folder; ``n_folds`` uses only the first folds (faster, less robust)."""
    folder = Path(folder)
    card = ModelCard.load(folder)
    paths = sorted(folder.glob("fold*.pt"), key=lambda p: int(p.stem[4:]))
    if not paths:
        raise InputError(f"{folder} has no trained folds (fold*.pt): train it first.")
    if n_folds is not None:
        if not 1 <= n_folds <= len(paths):
            raise InputError(f"{n_folds} folds cannot be used: {folder} holds {len(paths)} "
                             f"trained folds of its {card.folds}-fold ensemble; give --folds "
                             f"1 to {len(paths)}.")
        paths = paths[:n_folds]
    torch_device = resolve_device(device)
    return Ensemble(card, [load_fold_net(card, path, torch_device) for path in paths],
                    torch_device, folder)


def load_fold_net(card: ModelCard, path: Path, device: torch.device) -> torch.nn.Module:
    """One fold's network in evaluation mode, weights back in full precision."""
    net = build_unet(card)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return net.to(device).eval()


def default_models_dir() -> Path:
    """The shipped models (shipped.models_dir), or $C3SARCOPENIA_MODELS when set."""
    if os.environ.get("C3SARCOPENIA_MODELS"):
        return Path(os.environ["C3SARCOPENIA_MODELS"])
    return models_dir()
