"""Training a stage's 5-fold ensemble with the protocol of Naser et al. 2022.

Per iteration one case gives 4 random patches (half centred on the label, half anywhere),
randomly flipped left-right and affinely warped (axial rotation up to 12 degrees, scale 10 %);
Adam (0.9, 0.999) on soft Dice loss, learning rate 2e-4, then 1e-4 for the last sixth.
Each fold checkpoints as it goes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch
from monai.losses import DiceLoss
from monai.transforms import (Compose, MapTransform, RandAffined, RandCropByPosNegLabeld,
                              RandomizableTransform)

from . import imaging
from .cohort.review_marks import leave_out_needs_correction
from .errors import InputError
from .fileio import read_csv_rows, write_atomic, write_text_atomic
from .image_files import read_image
from .measures import dice
from .models import (Ensemble, ModelCard, build_unet, fold_weights_path, load_fold_net,
                     resolve_device, save_fold_weights)
from .pipeline import centre_z_mm, fold_masks, muscle_network_input, section_network_input
from .training_curve import save_training_curve

PATCHES_PER_CASE = 4
LEARNING_RATES = (2e-4, 1e-4)
CHECKPOINT_EVERY = 25
# Muscle stage: besides the C3 slice, slices this close to it add anatomical variety.
MUSCLE_SLICE_NEIGHBOURHOOD_MM = 8.0


@dataclass
class TrainingCase:
    case_id: str
    images: list[np.ndarray]   # normalised network inputs (one 3D volume, or 2D slices)
    labels: list[np.ndarray]   # uint8 labels on the same grids
    c3_z_mm: float | None = None   # section stage: true C3 level, for the slice error
    grid: sitk.Image | None = None  # section stage: geometry of images[0]


def read_manifest(path: str | Path, required: tuple[str, ...] = ("case_id", "ct")) -> list[dict]:
    """Manifest rows with file paths resolved against the manifest's folder; a manifest
    without the ``required`` columns is refused with the header it needs."""
    path = Path(path)
    rows = [row for _, row in read_csv_rows(path, required, "the manifest.csv of a cohort")]
    if not rows:
        raise InputError(f"{path} lists no cases.")
    for row in rows:
        for key in ("ct", "section_mask", "muscle_mask", "slice_ct", "slice_mask"):
            if row.get(key):
                row[key] = str((path.parent / row[key]).resolve())
    return rows


def _label_on_grid(mask_path: str, ct: sitk.Image, grid: sitk.Image) -> np.ndarray:
    label = read_image(mask_path, "mask", sitk.sitkUInt8)
    imaging.check_same_grid(label, ct, f"the mask {Path(mask_path).name}")
    return sitk.GetArrayFromImage(imaging.resample_like(label, grid)).astype(np.uint8)


def prepare_section_case(row: dict, card: ModelCard) -> TrainingCase:
    ct = imaging.read_ct(row["ct"])
    net_input = section_network_input(ct, card.spacing_mm)
    label = _label_on_grid(row["section_mask"], ct, net_input.grid)
    c3_z = imaging.slice_z_mm(ct, int(row["c3_slice_k"]))
    return TrainingCase(row["case_id"], [net_input.image], [label], c3_z, net_input.grid)


def prepare_muscle_case(row: dict, card: ModelCard) -> TrainingCase:
    """The C3 slice and its near neighbours (or the single exported slice) in 2D."""
    if row.get("slice_ct"):
        ct, mask_path, slices = imaging.read_ct(row["slice_ct"]), row["slice_mask"], [0]
    elif not row.get("muscle_mask"):
        raise InputError(f"case {row['case_id']} has no muscle mask: the muscle stage needs "
                         "one per case (a manifest of C3 levels trains the section stage only).")
    else:
        ct, mask_path = imaging.read_ct(row["ct"]), row["muscle_mask"]
        c3_k = int(row["c3_slice_k"])
        zs = imaging.slice_zs_mm(ct)
        slices = [int(k) for k in
                  np.flatnonzero(np.abs(zs - zs[c3_k]) <= MUSCLE_SLICE_NEIGHBOURHOOD_MM)]
        slices.sort(key=lambda k: abs(k - c3_k))  # the C3 slice first: validation uses it
    mask = read_image(mask_path, "mask", sitk.sitkUInt8)
    if mask.GetDimension() == 2:
        mask = sitk.JoinSeries(mask)
    imaging.check_same_grid(mask, ct, f"the mask {Path(mask_path).name}")
    # A reader labels one slice: its unlabelled neighbours are unknown, not muscle-free.
    labelled = sitk.GetArrayViewFromImage(mask).any(axis=(1, 2))
    slices = [k for k in slices if labelled[k] or k == slices[0]]
    images, labels = [], []
    for k in slices:
        net_input = muscle_network_input(ct, k, card.spacing_mm)
        images.append(net_input.image)
        labels.append(sitk.GetArrayFromImage(
            imaging.resample_like(mask[:, :, k], net_input.grid)).astype(np.uint8))
    return TrainingCase(row["case_id"], images, labels)


def fold_split(n_cases: int, folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """K-fold cross-validation: each case validates exactly one fold."""
    if n_cases < folds:
        raise InputError(f"{n_cases} cases cannot make {folds} folds: add cases or lower "
                         "--folds.")
    order = np.random.default_rng(seed).permutation(n_cases)
    parts = np.array_split(order, folds)
    return [(sorted(int(i) for j, p in enumerate(parts) if j != f for i in p),
             sorted(int(i) for i in parts[f])) for f in range(folds)]


class RandLeftRightFlipd(RandomizableTransform, MapTransform):
    """Flip image and label left-right together; labels named for a side swap with it
    (a flipped right SCM is a left one)."""

    def __init__(self, keys, prob: float, classes: list[str], label_key: str = "label"):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.label_key = label_key
        self.swap = np.arange(len(classes) + 1)
        for label, name in enumerate(classes, start=1):
            other = (name.replace("right", "left") if "right" in name
                     else name.replace("left", "right"))
            if other != name and other in classes:
                self.swap[label] = classes.index(other) + 1

    def __call__(self, data):
        self.randomize(None)
        if not self._do_transform:
            return data
        out = dict(data)
        for key in self.keys:
            out[key] = torch.flip(torch.as_tensor(out[key]), dims=(-1,))
        if self.label_key in out:
            label = out[self.label_key]
            out[self.label_key] = torch.as_tensor(self.swap)[label.long()].to(label.dtype)
        return out


def augmentation(card: ModelCard) -> Compose:
    """Patch sampling and augmentation. Flips are left-right only: head-feet or front-back
    flips would create anatomy that never occurs and blur which way C3 lies."""
    keys = ("image", "label")
    axial_rotation = math.radians(12)
    rotate = (axial_rotation, 0.0, 0.0) if card.spatial_dims == 3 else axial_rotation
    return Compose([
        RandCropByPosNegLabeld(keys, "label", card.patch_size, pos=1, neg=1,
                               num_samples=PATCHES_PER_CASE, allow_smaller=True),
        RandLeftRightFlipd(keys, prob=0.5, classes=card.classes),
        RandAffined(keys, prob=0.5, rotate_range=rotate, scale_range=0.1,
                    mode=("bilinear", "nearest"), padding_mode="border"),
    ])


def _pad_to_patch(array: np.ndarray, patch: list[int], value: float) -> np.ndarray:
    pads = [(0, max(0, p - s)) for s, p in zip(array.shape, patch)]
    return np.pad(array, pads, constant_values=value) if any(p[1] for p in pads) else array


def _batch(case: TrainingCase, transform: Compose, card: ModelCard, rng: np.random.Generator,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    i = int(rng.integers(len(case.images)))
    sample = {"image": _pad_to_patch(case.images[i], card.patch_size, -1.0)[None],
              "label": _pad_to_patch(case.labels[i], card.patch_size, 0)[None]}
    patches = transform(sample)
    image = torch.stack([torch.as_tensor(p["image"]) for p in patches]).float()
    label = torch.stack([torch.as_tensor(p["label"]) for p in patches]).round()
    return image.to(device), label.to(device)


def learning_rate(iteration: int, iterations: int) -> float:
    return LEARNING_RATES[0] if iteration < iterations - iterations // 6 else LEARNING_RATES[1]


@dataclass
class FoldState:
    iteration: int = 0
    losses: list[float] = field(default_factory=list)


def _checkpoint_path(out: Path, fold: int) -> Path:
    return out / "checkpoints" / f"fold{fold}.ckpt"


def _metrics_path(out: Path, fold: int) -> Path:
    return out / f"fold{fold}_metrics.json"


def train_fold(train_cases: list[TrainingCase], card: ModelCard, fold: int, out: Path,
               iterations: int, device: torch.device,
               progress: Callable[[int, int, float], None] | None = None,
               initial_weights: Path | None = None) -> FoldState:
    """Train one fold, resuming from its checkpoint; returns its loss history.

    ``initial_weights`` (a fold of another model folder) replaces the random start, to
    fine-tune a trained ensemble on more or other data."""
    torch.manual_seed(card.seed * 1000 + fold)
    net = build_unet(card).to(device)
    if initial_weights is not None:
        net.load_state_dict(load_fold_net(card, initial_weights, device).state_dict())
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATES[0], betas=(0.9, 0.999))
    state = FoldState()
    checkpoint = _checkpoint_path(out, fold)
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        net.load_state_dict(saved["net"])
        optimiser.load_state_dict(saved["optimiser"])
        state = FoldState(saved["iteration"], saved["losses"])
    loss_fn = DiceLoss(to_onehot_y=True, softmax=True)
    transform = augmentation(card)
    net.train()
    while state.iteration < iterations:
        # Seeded by iteration, so a resumed run draws the same patches as an unbroken one.
        rng = np.random.default_rng([card.seed, fold, state.iteration])
        transform.set_random_state(seed=int(rng.integers(2**31)))
        case = train_cases[int(rng.integers(len(train_cases)))]
        image, label = _batch(case, transform, card, rng, device)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(state.iteration, iterations)
        optimiser.zero_grad()
        loss = loss_fn(net(image), label)
        loss.backward()
        optimiser.step()
        state.losses.append(loss.item())
        state.iteration += 1
        if progress:
            progress(state.iteration, iterations, state.losses[-1])
        if state.iteration % CHECKPOINT_EVERY == 0 or state.iteration == iterations:
            _save_checkpoint(checkpoint, net, optimiser, state)
    save_fold_weights(net, out, fold)
    return state


def _save_checkpoint(path: Path, net, optimiser, state: FoldState) -> None:
    payload = {"net": net.state_dict(), "optimiser": optimiser.state_dict(),
               "iteration": state.iteration, "losses": state.losses}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def validate_fold(card: ModelCard, folder: Path, fold: int, cases: list[TrainingCase],
                  device: torch.device) -> dict:
    """Held-out fold metrics: DSC, and for the section the C3 level error in mm."""
    net = load_fold_net(card, fold_weights_path(folder, fold), device)
    single = Ensemble(card, [net], device, folder)
    dscs, errors_mm = [], []
    for case in cases:
        predicted = fold_masks(single, case.images[0])[0]
        dscs.append(dice(predicted, case.labels[0]))
        if case.c3_z_mm is not None and predicted.any():
            centre = centre_z_mm(predicted, imaging.slice_zs_mm(case.grid))
            errors_mm.append(abs(centre - case.c3_z_mm))
    metrics = {"fold": fold, "n_validation": len(cases), "dsc_mean": float(np.mean(dscs)),
               "dsc": dscs}
    if card.stage == "section":
        metrics["level_error_mm_median"] = float(np.median(errors_mm)) if errors_mm else None
        metrics["level_error_mm_max"] = float(np.max(errors_mm)) if errors_mm else None
        metrics["missed"] = len(cases) - len(errors_mm)
    return metrics


def train(manifests: list[str | Path], stage: str, out: str | Path, preset: str, folds: int,
          iterations: int, seed: int, device: str | None, command: str, trained_on: str,
          synthetic: bool, log: Callable[[str], None] = print,
          progress_factory: Callable[[int, str], Callable] | None = None,
          only_fold: int | None = None, init_from: str | Path | None = None) -> ModelCard:
    """Train (or resume) every fold, validate each on its held-out cases, write the card.

    The cases of several manifests (say, phantoms and annotated patients) train together.
    With ``only_fold`` just that fold is trained, so that folds can run in parallel
    processes; a last run without it gathers them into the card. With ``init_from`` each
    fold starts from the same fold of that model folder instead of random weights.
    """
    out = Path(out)
    card = ModelCard.from_preset(stage, preset, folds=folds, seed=seed, iterations=iterations,
                                 command=command, trained_on=trained_on, synthetic=synthetic)
    if init_from is not None:
        if Path(init_from).resolve() == out.resolve():
            raise InputError("--init-from and --out are the same folder: write the fine-tuned "
                             "model to a new folder, so the one it starts from stays intact.")
        card.initialised_from = _initialisation(Path(init_from), card)
        card.notes.append("Fine-tuned from another ensemble: a fold's validation cases may have "
                          "been training cases of the model it started from, so the "
                          "cross-validation figures are optimistic; held-out test sets are "
                          "the measure.")
    if only_fold is not None and not 0 <= only_fold < folds:
        raise InputError(f"fold {only_fold} does not exist: folds are numbered 0 to "
                         f"{folds - 1}.")
    _check_resume(out, card)
    rows, left_out = [], []
    for manifest in manifests:
        kept, rejected = leave_out_needs_correction(read_manifest(manifest), Path(manifest).name)
        rows, left_out = rows + kept, left_out + rejected
    if left_out:
        log(f"Left out {len(left_out)} case(s) a reviewer marked needs_correction: "
            f"{', '.join(left_out)}")
        if not rows:
            raise InputError("every case is marked needs_correction: nothing is left to train "
                             "on. Correct the cases and mark them accept, or train on others.")
    prepare = prepare_section_case if stage == "section" else prepare_muscle_case
    log(f"Preparing {len(rows)} cases for the {stage} stage ({preset} preset)")
    cases = [prepare(row, card) for row in rows]
    card.training_cases = len(cases)
    card.save(out)
    torch_device = resolve_device(device)
    losses = {}
    for fold, (train_idx, val_idx) in enumerate(fold_split(len(cases), folds, seed)):
        if only_fold is not None and fold != only_fold:
            continue
        if _metrics_path(out, fold).is_file():
            log(f"fold {fold}: already trained, skipped")
            losses[fold] = json.loads(_metrics_path(out, fold).read_text())["losses"]
            continue
        started = time.time()
        progress = progress_factory(iterations, f"fold {fold}") if progress_factory else None
        initial = fold_weights_path(Path(init_from), fold) if init_from is not None else None
        state = train_fold([cases[i] for i in train_idx], card, fold, out, iterations,
                           torch_device, progress, initial)
        losses[fold] = state.losses
        metrics = validate_fold(card, out, fold, [cases[i] for i in val_idx], torch_device)
        metrics["train_seconds"] = round(time.time() - started, 1)
        metrics["validation_cases"] = [cases[i].case_id for i in val_idx]
        metrics["losses"] = [round(v, 5) for v in state.losses]
        write_text_atomic(_metrics_path(out, fold), json.dumps(metrics, indent=2) + "\n")
        # The fold is done: its weights and metrics remain.
        _checkpoint_path(out, fold).unlink(missing_ok=True)
        log(f"fold {fold}: validation DSC {metrics['dsc_mean']:.3f}")
    if only_fold is not None:
        return card
    save_training_curve(out, losses)
    card.metrics["cross_validation"] = _summarise_folds(out, folds)
    card.save(out)
    return card


def _initialisation(folder: Path, card: ModelCard) -> dict:
    """Where a fine-tuned ensemble started: the source must have the same network and folds."""
    source = ModelCard.load(folder)
    for name in ("stage", "preset", "spacing_mm", "channels", "strides", "num_res_units",
                 "folds"):
        if getattr(source, name) != getattr(card, name):
            raise InputError(f"--init-from {folder} holds a model with {name}="
                             f"{getattr(source, name)!r}, but this training asks for "
                             f"{getattr(card, name)!r}: fine-tune with the same stage, preset "
                             "and number of folds as the model you start from.")
    missing = [f for f in range(card.folds) if not fold_weights_path(folder, f).is_file()]
    if missing:
        raise InputError(f"--init-from {folder} lacks the weights of fold(s) {missing}: "
                         "finish that training first.")
    return {"folder": str(folder), "command": source.command, "trained_on": source.trained_on,
            "training_cases": source.training_cases, "iterations": source.iterations,
            "synthetic": source.synthetic, "initialised_from": source.initialised_from}


def _check_resume(out: Path, card: ModelCard) -> None:
    """Resuming is only safe into a folder of the same stage, preset and seed."""
    if not (out / "model_card.json").is_file():
        return
    old = ModelCard.load(out)
    for name in ("stage", "preset", "seed", "folds", "iterations"):
        if getattr(old, name) != getattr(card, name):
            raise InputError(f"{out} holds a training with {name}={getattr(old, name)!r}, not "
                             f"{getattr(card, name)!r}: use another --out folder to start "
                             "afresh, or the same settings to resume.")


def _summarise_folds(out: Path, folds: int) -> dict:
    per_fold = [json.loads(_metrics_path(out, f).read_text()) for f in range(folds)]
    summary = {"dsc_mean": float(np.mean([m["dsc_mean"] for m in per_fold]))}
    medians = [m.get("level_error_mm_median") for m in per_fold]
    if all(v is not None for v in medians) and per_fold[0].get("level_error_mm_median") is not None:
        summary["level_error_mm_median_of_folds"] = float(np.median(medians))
        summary["level_error_mm_max"] = float(max(m["level_error_mm_max"] for m in per_fold))
    return summary
