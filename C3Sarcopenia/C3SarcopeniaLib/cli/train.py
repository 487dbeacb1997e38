"""The ``train`` sub-command: a stage's cross-validation ensemble from a manifest."""

from __future__ import annotations

import argparse
import sys

from .core import command_line
from ..fileio import check_output_folder
from ..presets import PRESETS, STAGES


def register(subparsers) -> None:
    presets = sorted({preset for _, preset in PRESETS})
    parser = subparsers.add_parser(
        "train", help="train a stage's 5-fold ensemble (resumes when interrupted)",
        description="Train the section (stage 1) or muscle (stage 2) ensemble with the "
                    "protocol of Naser et al. 2022: K-fold cross-validation, 4 random patches "
                    "per case, left-right flips, affine warps, Adam, soft Dice loss. Run the "
                    "same command again to resume an interrupted training.")
    parser.add_argument("--manifest", required=True, nargs="+",
                        help="manifest.csv of the training cases (phantom, ingest or "
                             "ingest-levels); several manifests train together")
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--preset", choices=presets, default="paper",
                        help="architecture and grid: paper (1 mm, as Naser et al.) or fast "
                             "(section 3 mm, muscle 2 mm: the shipped models' presets); "
                             "default paper")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    parser.add_argument("--iterations", type=int, default=2000,
                        help="optimisation steps per fold (default 2000)")
    parser.add_argument("--fold", type=int, default=None,
                        help="train only this fold (0-based), to run folds in parallel "
                             "processes; run again without --fold to gather the model card")
    parser.add_argument("--init-from", metavar="MODELDIR", default=None,
                        help="start each fold from the same fold of this trained model folder "
                             "(same stage, preset and folds) instead of random weights: "
                             "fine-tunes, say, the shipped models on your own cohort")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--trained-on", default="",
                        help="what the data are, for the model card (default: the manifest)")
    parser.add_argument("--synthetic", action="store_true",
                        help="the manifest holds synthetic phantoms, not patients (the model "
                             "card and every result then say so)")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    from tqdm import tqdm

    from ..training import train

    def progress_bar(total: int, label: str):
        bar = tqdm(total=total, desc=label, unit="it", file=sys.stderr, mininterval=2)

        def update(done: int, total_: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(done - bar.n)
            if done == total_:
                bar.close()

        return update

    card = train(args.manifest, args.stage, args.out, args.preset, args.folds, args.iterations,
                 args.seed, args.device, command_line(),
                 args.trained_on or f"cases of {' + '.join(args.manifest)}", args.synthetic,
                 progress_factory=progress_bar, only_fold=args.fold,
                 init_from=args.init_from)
    if args.fold is not None:
        print(f"Fold {args.fold} trained in {args.out}; run without --fold once every fold "
              "is done to write the model card's cross-validation summary.")
        return 0
    print(f"Model card: {args.out}/model_card.json  cross-validation: "
          f"{card.metrics['cross_validation']}")
    return 0
