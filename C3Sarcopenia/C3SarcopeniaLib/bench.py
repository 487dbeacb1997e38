"""Speed benchmark: where one prediction spends its time, the shipped configuration against
the paper's stage 1, and how many cases per hour a batch measures.

Inputs are a phantom with the geometry of a clinical head-and-neck CT (512 x 512 pixels of
0.98 mm, 191 slices of 2.5 mm) and, when given, a real CT. The paper configuration uses
randomly initialised networks of the paper preset: timing does not depend on the weights.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import SimpleITK as sitk
import torch

from . import imaging
from .bench_batch import batch_lines, time_batches
from .bench_worker import WORKER_NUDGE_NOTE, time_worker_nudge
from .cohort.batch import BatchJob, find_cases
from .errors import InputError
from .fileio import write_text_atomic
from .measures import ClinicalInfo
from .models import (Ensemble, ModelCard, build_unet, default_models_dir, load_ensemble,
                     save_fold_weights)
from .phantoms.phantom import PhantomOptions, write_phantom_cohort
from .pipeline import (find_c3_section, measure_on_slice, predict, section_network_input,
                       segment_muscle)

STEPS = ("read_s", "preprocess_s", "stage1_s", "stage2_s", "measure_s", "predict_s", "nudge_s")
STEP_NAMES = {"read_s": "read the CT", "preprocess_s": "preprocess (stage-1 grid)",
              "stage1_s": "stage 1: find C3", "stage2_s": "stage 2: segment muscle",
              "measure_s": "measures", "predict_s": "whole predict (read incl.)",
              "nudge_s": "nudge to k+1: stage 2 + measures"}
# Every measure is computed, L3 estimate and SMI included.
TIMING_CLINICAL = ClinicalInfo(age_years=57.0, sex="M", height_cm=176.0, weight_kg=82.0)
INPUT_NAMES = {"clinical_phantom": "phantom", "real_ct": "real CT"}
RANDOM_WEIGHTS_NOTE = ("the paper configuration runs randomly initialised networks of the "
                       "paper preset: timing does not depend on the weights.")


def clinical_geometry() -> PhantomOptions:
    """A typical head-and-neck CT: 512 x 512 pixels of 0.98 mm, 191 axial slices of 2.5 mm."""
    return PhantomOptions(in_plane_mm=(500 / 512, 500 / 512), slice_mm=(2.5, 2.5),
                          fov_mm=500.0, scan_length_mm=475.0)


def small_phantoms() -> PhantomOptions:
    """The coarse phantoms of the batch figure (1.6 mm pixels, 3 mm slices)."""
    return PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3.0, 3.0))


@dataclass
class BenchOptions:
    """What to time; the phantom geometries and the paper networks can be made small for tests."""

    out_dir: Path
    models_dir: Path | None = None  # folder with section/ and muscle/; None: the shipped ones
    real_ct: Path | None = None
    repeats: int = 3
    paper_repeats: int = 1  # 0: skip the paper configuration
    batch_cases: int = 20   # 0: skip the batch
    batch_workers: tuple[int, ...] = (0,)  # 0: in this process; N: a local cluster of N
    phantom: PhantomOptions = field(default_factory=clinical_geometry)
    batch_phantom: PhantomOptions = field(default_factory=small_phantoms)
    paper_card: ModelCard = field(default_factory=lambda: ModelCard.from_preset("section",
                                                                                "paper"))
    seed: int = 2024

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)

    def check(self) -> None:
        if self.repeats < 1:
            raise InputError("--repeats must be at least 1.")
        if self.paper_repeats < 0 or self.batch_cases < 0:
            raise InputError("--paper-repeats and --batch-cases must be 0 (skip) or more.")
        if self.real_ct is not None and not Path(self.real_ct).exists():
            raise InputError(f"{self.real_ct} does not exist: check the path given to "
                             "--real-ct.")


@dataclass
class StepTimes:
    """Median seconds of each step over ``runs`` runs on one CT."""

    read_s: float
    preprocess_s: float
    stage1_s: float
    stage2_s: float
    measure_s: float
    predict_s: float  # reading included
    nudge_s: float    # stage 2 and measures again on slice k+1
    runs: int


@dataclass
class ConfigurationTimes:
    """One configuration (stage-1 and stage-2 ensembles) timed on every input."""

    name: str
    section: dict
    muscle: dict
    load_s: float  # loading both ensembles once (paper: building its stage-1 ensemble)
    inputs: dict[str, StepTimes]


def _timed(times: dict[str, float], step: str, function: Callable, *args):
    started = time.perf_counter()
    value = function(*args)
    times[step] = time.perf_counter() - started
    return value


def time_stages(path: Path, section: Ensemble, muscle: Ensemble) -> dict[str, float]:
    """Each step of a prediction once, then the nudge to slice k+1 (k-1 at the top)."""
    times: dict[str, float] = {}
    ct = _timed(times, "read_s", imaging.read_ct, path)
    _timed(times, "preprocess_s", section_network_input, ct, section.card.spacing_mm)
    k = _timed(times, "stage1_s", find_c3_section, ct, section).c3_slice_k
    mask = _timed(times, "stage2_s", segment_muscle, ct, k, muscle)
    _timed(times, "measure_s", measure_on_slice, ct, k, mask, TIMING_CLINICAL)
    nudged = k + 1 if k + 1 < ct.GetSize()[2] else k - 1
    _timed(times, "nudge_s", lambda: measure_on_slice(
        ct, nudged, segment_muscle(ct, nudged, muscle), TIMING_CLINICAL))
    return times


def time_once(path: Path, section: Ensemble, muscle: Ensemble) -> dict[str, float]:
    """The steps, then the whole predict with its reading (one CT in memory at a time)."""
    times = time_stages(path, section, muscle)
    _timed(times, "predict_s",
           lambda: predict(imaging.read_ct(path), TIMING_CLINICAL, muscle, section))
    return times


def time_steps(path: Path, section: Ensemble, muscle: Ensemble, runs: int) -> StepTimes:
    """The median of each step over several runs."""
    samples = [time_once(path, section, muscle) for _ in range(runs)]
    return StepTimes(**{step: statistics.median(s[step] for s in samples) for step in STEPS},
                     runs=runs)


def describe(ensemble: Ensemble) -> dict:
    card = ensemble.card
    return {"preset": card.preset, "spacing_mm": card.spacing_mm, "patch_size": card.patch_size,
            "channels": card.channels, "folds": len(ensemble.nets), "device": str(ensemble.device)}


def geometry(path: Path) -> dict:
    ct = imaging.read_ct(path)
    return {"path": str(path), "size": list(ct.GetSize()),
            "spacing_mm": [round(s, 3) for s in ct.GetSpacing()]}


def random_section_models(card: ModelCard, folds: int, folder: Path,
                          device: str | None) -> Ensemble:
    """Randomly initialised stage-1 networks of ``card``'s architecture, saved and loaded
    like a trained ensemble (timing does not depend on the weights)."""
    card = replace(card, folds=folds, notes=[RANDOM_WEIGHTS_NOTE])
    torch.manual_seed(0)
    for fold in range(folds):
        save_fold_weights(build_unet(card), folder, fold)
    card.save(folder)
    return load_ensemble(folder, device)


def time_configuration(name: str, section: Ensemble, muscle: Ensemble, load_s: float,
                       inputs: dict[str, Path], runs: int) -> ConfigurationTimes:
    """Both ensembles timed on every input."""
    return ConfigurationTimes(name, describe(section), describe(muscle), load_s,
                              {label: time_steps(path, section, muscle, runs)
                               for label, path in inputs.items()})


def batch_figures(options: BenchOptions, cohort: Path, models: Path, device: str) -> dict:
    """``batch`` over the small phantoms with each of ``options.batch_workers``."""
    spacing = options.batch_phantom
    return time_batches(options.out_dir, cohort, BatchJob(models, device),
                        options.batch_workers,
                        f"synthetic phantoms, {spacing.in_plane_mm[0]:g} mm pixels, "
                        f"{spacing.slice_mm[0]:g} mm slices")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "simpleitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def write_phantoms(options: BenchOptions) -> tuple[Path, Path | None]:
    """The clinical-geometry phantom's CT and the batch cohort's manifest, made in a child
    process so that drawing them does not count in this process's peak memory."""
    folder = options.out_dir / "phantoms"
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        clinical = pool.submit(write_phantom_cohort, 1, options.seed, folder / "clinical",
                               options.phantom)
        cohort = (pool.submit(write_phantom_cohort, options.batch_cases, options.seed + 1,
                              folder / "batch", options.batch_phantom)
                  if options.batch_cases else None)
        return find_cases(clinical.result())[0].path, cohort.result() if cohort else None


def time_command_start(out_dir: Path) -> dict:
    """Seconds of ``c3sarcopenia --help`` and of the refusal of a missing CT, each in a fresh
    process: what a user waits for before anything happens (heavy libraries load only once
    the inputs passed their checks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    figures = {}
    for name, argv in (("help_s", ["--help"]),
                       ("refusal_s", ["predict", str(out_dir / "missing_ct.nii.gz"),
                                      "--out", str(out_dir / "refused")])):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "C3SarcopeniaLib", *argv], env=env,
                       capture_output=True, check=False)
        figures[name] = round(time.perf_counter() - started, 2)
    return figures


def run_bench(options: BenchOptions, log: Callable[[str], None] = lambda message: None) -> dict:
    """Time everything, write ``out_dir/bench.json`` and return what it holds.

    The phantoms are drawn in a child process: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard of multiprocessing.
    """
    options.check()
    log("Timing the command's start")
    command_start = time_command_start(options.out_dir)
    log("Writing the phantoms")
    phantom_ct, cohort = write_phantoms(options)
    inputs = {"clinical_phantom": phantom_ct}
    if options.real_ct is not None:
        inputs["real_ct"] = Path(options.real_ct)
    models = Path(options.models_dir or default_models_dir())
    started = time.perf_counter()
    section, muscle = load_ensemble(models / "section"), load_ensemble(models / "muscle")
    load_s = time.perf_counter() - started
    log(f"Timing the shipped configuration ({options.repeats} runs per input)")
    default = time_configuration("default", section, muscle, load_s, inputs, options.repeats)
    log("Timing the nudge through a warm worker process (the Slicer panel's path)")
    worker_nudge_s = time_worker_nudge(phantom_ct, models, str(section.device), options.repeats)
    peak = peak_rss_mb()
    batch = None
    if cohort is not None:
        log(f"Timing batch over {options.batch_cases} phantoms with "
            f"{', '.join(map(str, options.batch_workers))} workers (0: in this process)")
        batch = batch_figures(options, cohort, models, str(section.device))
    paper = None
    if options.paper_repeats:
        log(f"Timing the paper configuration ({options.paper_repeats} run(s) per input; "
            "many minutes on a CPU)")
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            paper_section = random_section_models(options.paper_card, len(section.nets),
                                                  Path(folder), str(section.device))
            paper = time_configuration("paper", paper_section, muscle,
                                       time.perf_counter() - started, inputs,
                                       options.paper_repeats)
    result = summarise(options, {label: geometry(path) for label, path in inputs.items()},
                       default, paper, peak, batch)
    result["command_start"] = command_start
    result["worker_nudge_s"] = worker_nudge_s
    result["notes"].append(WORKER_NUDGE_NOTE)
    write_text_atomic(options.out_dir / "bench.json", json.dumps(result, indent=2) + "\n")
    return result


def summarise(options: BenchOptions, inputs: dict[str, dict], default: ConfigurationTimes,
              paper: ConfigurationTimes | None, peak_mb: float, batch: dict | None) -> dict:
    """bench.json: the headline figures are on the clinical-geometry phantom; ``batch`` is
    bench_batch.time_batches's, its first worker count the headline."""
    default_s = default.inputs["clinical_phantom"].predict_s
    paper_s = paper.inputs["clinical_phantom"].predict_s if paper else None
    batches = [asdict(times) for times in batch["times"]] if batch else []
    return {
        "default_predict_s": default_s,
        "paper_predict_s": paper_s,
        "speedup": paper_s / default_s if paper_s else None,
        "nudge_s": default.inputs["clinical_phantom"].nudge_s,
        "peak_rss_mb": peak_mb,
        "batch_cases_per_hour": batches[0]["cases_per_hour"] if batches else None,
        "batch_workers_ratio": batch["ratio"] if batch else None,
        "repeats": options.repeats,
        "paper_repeats": options.paper_repeats,
        "inputs": inputs,
        "models": str(options.models_dir or default_models_dir()),
        "configurations": {c.name: asdict(c) for c in (default, paper) if c is not None},
        "batch": batches[0] if batches else None,
        "batch_workers": {str(times["workers"]): times for times in batches},
        "machine": machine(),
        "notes": [
            "times in seconds, median of 'repeats' runs (paper: of 'paper_repeats' runs) in one "
            "process; the headline figures are on the clinical-geometry phantom.",
            "stage 1 includes its own preprocessing; predict includes reading the CT.",
            "peak_rss_mb: peak resident memory after the default configuration, before the "
            "batch and the paper configuration ran.",
            RANDOM_WEIGHTS_NOTE,
            "machine.load_average: the 1-, 5- and 15-minute load when the run ended; other "
            "work on the machine slows every figure (most with several torch threads).",
            "batch_workers: batch over the same phantoms in this process ('0') and on local "
            "clusters of N worker processes sharing the cores; cases_per_hour leaves out the "
            "start (start_s: cluster and models); batch_workers_ratio: the last count's cases "
            "per hour over the first's.",
        ],
    }


def format_table(result: dict) -> str:
    """The figures as a short text table."""
    configurations = result["configurations"]
    columns = [(name, label) for label in result["inputs"] for name in configurations]
    lines = [f"{INPUT_NAMES[label]}: {'x'.join(map(str, shape['size']))} voxels of "
             f"{' x '.join(f'{s:g}' for s in shape['spacing_mm'])} mm"
             for label, shape in result["inputs"].items()]
    lines.append(f"{'step (seconds)':36s}" + "".join(
        f"{f'{INPUT_NAMES[label]}, {name}':>20s}" for name, label in columns))
    for step in STEPS:
        lines.append(f"{STEP_NAMES[step]:36s}" + "".join(
            f"{configurations[name]['inputs'][label][step]:20.2f}" for name, label in columns))
    machine_ = result["machine"]
    lines.append(f"machine: {machine_['cpu']}, {machine_['cores']} cores, torch "
                 f"{machine_['torch']} ({machine_['torch_threads']} threads)")
    lines.append(f"default: median of {result['repeats']} run(s); peak resident memory "
                 f"{result['peak_rss_mb']:.0f} MB")
    if result.get("worker_nudge_s") is not None:
        lines.append(f"nudge through the warm worker (Slicer panel): "
                     f"{result['worker_nudge_s']:.2f} s")
    if result["speedup"] is not None:
        lines.append(f"paper: median of {result['paper_repeats']} run(s), random weights "
                     "(timing does not depend on them)")
        lines.append(f"speedup (paper / default whole predict, phantom): "
                     f"{result['speedup']:.1f}x")
    start = result.get("command_start")
    if start:
        lines.append(f"command start: --help {start['help_s']:.2f} s, refusal of a missing CT "
                     f"{start['refusal_s']:.2f} s (each in a fresh process)")
    return "\n".join(lines + batch_lines(result))
