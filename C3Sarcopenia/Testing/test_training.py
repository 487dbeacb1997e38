"""Training protocol: the loss falls, checkpoints resume, folds validate, the card records."""

import json

import numpy as np
import pytest
import torch

from C3SarcopeniaLib import training
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.models import ModelCard, load_ensemble


def test_fold_split_is_a_partition():
    splits = training.fold_split(11, 5, seed=3)
    validation = sorted(i for _, val in splits for i in val)
    assert validation == list(range(11))
    for train_idx, val_idx in splits:
        assert not set(train_idx) & set(val_idx) and len(train_idx) + len(val_idx) == 11
    with pytest.raises(InputError, match="folds"):
        training.fold_split(3, 5, seed=0)


def test_learning_rate_drops_for_the_last_sixth():
    rates = [training.learning_rate(i, 600) for i in range(600)]
    assert rates[:500] == [2e-4] * 500 and rates[500:] == [1e-4] * 100


def test_muscle_training_loss_falls_and_resume_continues(tmp_path, phantom_cohort):
    card = ModelCard.from_preset("muscle", "paper", seed=1)
    cases = [training.prepare_muscle_case(row, card)
             for row in training.read_manifest(phantom_cohort)[:3]]
    device = torch.device("cpu")
    first = training.train_fold(cases, card, 0, tmp_path, 25, device)
    assert np.mean(first.losses[-5:]) < np.mean(first.losses[:5]) - 0.02
    checkpoint = torch.load(tmp_path / "checkpoints" / "fold0.ckpt", weights_only=False)
    assert checkpoint["iteration"] == 25 and len(checkpoint["losses"]) == 25
    resumed = training.train_fold(cases, card, 0, tmp_path, 30, device)
    assert resumed.iteration == 30 and resumed.losses[:25] == first.losses


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, phantom_cohort):
    card = ModelCard.from_preset("muscle", "paper", seed=2)
    cases = [training.prepare_muscle_case(row, card)
             for row in training.read_manifest(phantom_cohort)[:2]]
    device = torch.device("cpu")
    unbroken = training.train_fold(cases, card, 0, tmp_path / "a", 8, device)
    training.train_fold(cases, card, 0, tmp_path / "b", 4, device)  # "interrupted" at 4...
    resumed = training.train_fold(cases, card, 0, tmp_path / "b", 8, device)  # ...resumed
    assert np.allclose(resumed.losses, unbroken.losses, atol=1e-4)


def test_train_writes_card_metrics_curve_and_refuses_mismatched_resume(tiny_models,
                                                                       phantom_cohort):
    for stage in ("section", "muscle"):
        folder = tiny_models / stage
        card = ModelCard.load(folder)
        assert card.stage == stage and card.synthetic and card.training_cases == 5
        assert "cross_validation" in card.metrics
        assert (folder / "training_curve.png").stat().st_size > 1000
        metrics = json.loads((folder / "fold1_metrics.json").read_text())
        assert 0.0 <= metrics["dsc_mean"] <= 1.0 and metrics["n_validation"] >= 2
        assert len(load_ensemble(folder).nets) == 2
    with pytest.raises(InputError, match="preset"):
        training.train([phantom_cohort], "section", tiny_models / "section", "paper", 2, 3, 0,
                       "cpu", "test", "test", True, log=lambda m: None)


def test_folds_trained_in_separate_runs_gather_into_one_card(tmp_path, phantom_cohort):
    """Two manifests train together; --fold runs train one fold each, a last run gathers."""
    out = tmp_path / "section"
    settings = dict(stage="section", out=out, preset="fast", folds=2, iterations=2, seed=0,
                    device="cpu", command="test", trained_on="test", synthetic=True,
                    log=lambda m: None)
    manifests = [phantom_cohort, phantom_cohort]
    training.train(manifests, only_fold=1, **settings)
    assert (out / "fold1.pt").is_file() and not (out / "fold0.pt").exists()
    assert "cross_validation" not in ModelCard.load(out).metrics
    training.train(manifests, only_fold=0, **settings)
    fold0_weights = (out / "fold0.pt").read_bytes()
    card = training.train(manifests, **settings)
    assert card.training_cases == 10 and "cross_validation" in card.metrics
    assert (out / "fold0.pt").read_bytes() == fold0_weights  # gathered, not retrained
    with pytest.raises(InputError, match="fold 2 does not exist"):
        training.train(manifests, only_fold=2, **settings)


def test_fine_tuning_starts_each_fold_from_the_given_model(tmp_path, tiny_models,
                                                           phantom_cohort):
    source = tiny_models / "muscle"
    settings = dict(stage="muscle", preset="paper", folds=2, seed=0, device="cpu",
                    command="test", trained_on="test", synthetic=True, log=lambda m: None)
    card = ModelCard.from_preset("muscle", "paper", seed=0)
    cases = [training.prepare_muscle_case(row, card)
             for row in training.read_manifest(phantom_cohort)[:2]]
    training.train_fold(cases, card, 1, tmp_path / "zero", 0, torch.device("cpu"),
                        initial_weights=source / "fold1.pt")
    start = torch.load(source / "fold1.pt", weights_only=True)
    kept = torch.load(tmp_path / "zero" / "fold1.pt", weights_only=True)
    assert all(torch.equal(start[name], kept[name]) for name in start)
    tuned = training.train([phantom_cohort], out=tmp_path / "tuned", iterations=2,
                           init_from=source, **settings)
    fresh = training.train([phantom_cohort], out=tmp_path / "fresh", iterations=2, **settings)
    assert fresh.initialised_from == {} and not fresh.notes
    assert "optimistic" in tuned.notes[0]
    assert tuned.initialised_from["folder"] == str(source)
    assert tuned.initialised_from["iterations"] == ModelCard.load(source).iterations
    assert f"`{source}`" in (tmp_path / "tuned" / "MODEL_CARD.md").read_text()
    start = torch.load(source / "fold0.pt", weights_only=True)
    after = torch.load(tmp_path / "tuned" / "fold0.pt", weights_only=True)
    random_start = torch.load(tmp_path / "fresh" / "fold0.pt", weights_only=True)
    moved = sum(float((after[n].float() - start[n].float()).abs().sum()) for n in start)
    from_random = sum(float((after[n].float() - random_start[n].float()).abs().sum())
                      for n in start)
    assert 0 < moved < from_random  # two steps away from the source, far from a random start
    with pytest.raises(InputError, match="preset"):
        training.train([phantom_cohort], out=tmp_path / "x", iterations=1,
                       init_from=tiny_models / "section", **settings)
    with pytest.raises(InputError, match="same folder"):
        training.train([phantom_cohort], out=source, iterations=1, init_from=source,
                       **settings)


def test_model_card_shows_the_whole_chain_of_fine_tuning():
    card = ModelCard.from_preset("section", "fast")
    assert "| initialised from | random weights |" in card.markdown()
    base = {"folder": "runs/base", "iterations": 10, "trained_on": "phantoms",
            "training_cases": 5, "command": "train base", "initialised_from": {}}
    card.initialised_from = {"folder": "runs/tuned", "iterations": 20, "trained_on": "patients",
                             "training_cases": 7, "command": "train tuned",
                             "initialised_from": base}
    row = next(line for line in card.markdown().splitlines() if "initialised from" in line)
    assert row.index("runs/tuned") < row.index("itself initialised from") < row.index("runs/base")
    assert "20 iterations per fold on patients (7 cases)" in row and "`train base`" in row
