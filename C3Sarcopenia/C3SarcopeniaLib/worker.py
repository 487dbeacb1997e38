"""The inference worker: a long-lived process that loads the models once and answers requests.

The Slicer module runs the networks here (``PythonSlicer -m C3SarcopeniaLib worker``), never
in Slicer's own process: Slicer's main thread holds the GIL while its event loop idles, so
torch on a thread there would crawl, and a crash or a Cancel would take the scene with it.
The worker runs the same pipeline functions as the command line.

The protocol is one JSON object per line. Requests come on stdin::

    {"id": 3, "step": "find_c3" | "segment_muscle", "ct": PATH, "out": DIR,
     "slice_k": K (segment_muscle), "clinical": {"age_years": 61, "sex": "M", ...},
     "scm_nodal": null, "models": "" (the shipped ones), "device": "auto", "folds": 5}

Answers go to stdout::

    {"ready": true, "pid": 1234}                        once, when the worker is listening
    {"id": 3, "progress": 0.4, "message": "..."}        while the step runs
    {"id": 3, "result": DIR, "loaded": ["section"]}     DIR holds the masks and result.json;
                                                        "loaded": ensembles read for this request
    {"id": 3, "error": "...", "input_error": true}      nothing usable was written

The worker ends when its stdin closes (Slicer quit) or when it is killed (Cancel).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import SimpleITK as sitk

from . import imaging
from .errors import SYNTHETIC_MODELS_WARNING, InputError
from .fileio import write_image_atomic, write_text_atomic
from .measures import ClinicalInfo

STEPS = ("find_c3", "segment_muscle")
SECTION_FILE = "c3_section.nii.gz"
MUSCLE_SLICE_FILE = "muscle_slice.nii.gz"  # one slice deep, on the CT's slice k
RESULT_FILE = "result.json"


@dataclass
class StepRequest:
    """One step for the worker; ``out`` must be an empty folder of the caller's."""

    id: int
    step: str
    ct: str
    out: str
    slice_k: int | None = None
    clinical: dict = field(default_factory=dict)  # ClinicalInfo's fields
    scm_nodal: str | None = None
    models: str = ""  # a folder with section/ and muscle/; empty: the shipped models
    device: str = "auto"
    folds: int | None = None

    def line(self) -> str:
        return json.dumps(self.__dict__) + "\n"

    @classmethod
    def parse(cls, line: str) -> "StepRequest":
        try:
            fields = json.loads(line)
            request = cls(**fields)
        except (ValueError, TypeError) as error:
            raise InputError(f"not a worker request: {line.strip()[:200]} ({error})") from None
        if request.step not in STEPS:
            raise InputError(f"unknown step {request.step!r}: expected one of {STEPS}.")
        return request


@dataclass
class StepResult:
    """What a finished step left in its folder, read back by the caller."""

    step: str
    c3_slice_k: int
    fields: dict        # result.json
    mask: np.ndarray    # find_c3: the (k, j, i) section; segment_muscle: the (j, i) labels
    loaded: list[str] = field(default_factory=list)  # ensembles the worker read for it

    @property
    def warnings(self) -> list[str]:
        return list(self.fields.get("warnings", []))

    @property
    def synthetic_models(self) -> bool:
        return bool(self.fields.get("synthetic_models"))


def read_step_result(folder: str | Path, loaded: list[str] = ()) -> StepResult:
    """The result a step wrote in ``folder`` (result.json is written last)."""
    folder = Path(folder)
    fields = json.loads((folder / RESULT_FILE).read_text())
    name = SECTION_FILE if fields["step"] == "find_c3" else MUSCLE_SLICE_FILE
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name)))
    if fields["step"] == "segment_muscle":
        mask = mask[0]
    return StepResult(fields["step"], int(fields["c3_slice_k"]), fields, mask, list(loaded))


class Worker:
    """The models and the CT of the last request, kept between requests."""

    def __init__(self) -> None:
        self._ensembles: dict[tuple, Any] = {}
        self._ct_key: tuple | None = None
        self._ct: sitk.Image | None = None

    def ensemble(self, stage: str, request: StepRequest, loaded: list[str]):
        from .models import default_models_dir, load_ensemble

        root = Path(request.models) if request.models else default_models_dir()
        key = (stage, str(root.resolve()), request.device, request.folds)
        if key not in self._ensembles:
            self._ensembles[key] = load_ensemble(root / stage, request.device, request.folds)
            loaded.append(stage)
        return self._ensembles[key]

    def ct(self, path: str) -> sitk.Image:
        """Read again only when the file changed: a nudge re-uses the CT in memory."""
        if not Path(path).is_file():
            raise InputError(f"{path} does not exist: the CT handed to the worker is missing.")
        stat = os.stat(path)
        key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
        if key != self._ct_key:
            self._ct, self._ct_key = None, None  # one CT in memory at a time
            self._ct, self._ct_key = imaging.read_ct(path), key
        return self._ct

    def run(self, request: StepRequest, progress: Callable[[float, str], None]) -> list[str]:
        """Compute the step and write its folder; returns the ensembles it had to load."""
        from . import pipeline

        loaded: list[str] = []
        ct = self.ct(request.ct)
        out = Path(request.out)
        if request.step == "find_c3":
            models = self.ensemble("section", request, loaded)
            found = pipeline.find_c3_section(ct, models, progress)
            write_image_atomic(imaging.mask_image(found.section_mask, ct), out / SECTION_FILE)
            fields = {"c3_slice_k": found.c3_slice_k, "c3_slice_z_mm": found.c3_slice_z_mm,
                      "fold_slice_ks": found.fold_slice_ks, "warnings": found.warnings}
        else:
            if request.slice_k is None:
                raise InputError("no C3 slice is chosen: run Find C3 or choose the slice first.")
            models = self.ensemble("muscle", request, loaded)
            muscle, disagreement = pipeline.segment_muscle_folds(ct, request.slice_k, models,
                                                                 progress)
            k = request.slice_k
            write_image_atomic(imaging.mask_image(muscle[None], ct[:, :, k:k + 1]),
                               out / MUSCLE_SLICE_FILE)
            clinical = ClinicalInfo(**request.clinical)
            fields = pipeline.measure_on_slice(ct, k, muscle, clinical,
                                               scm_nodal=request.scm_nodal,
                                               muscle_fold_disagreement=disagreement).as_dict()
        synthetic = models.card.synthetic
        fields["warnings"] = fields["warnings"] + ([SYNTHETIC_MODELS_WARNING] if synthetic else [])
        fields.update(step=request.step, synthetic_models=synthetic)
        write_text_atomic(out / RESULT_FILE, json.dumps(fields, indent=2) + "\n")
        return loaded


def serve(requests: IO[str], answers: IO[str]) -> int:
    """Answer requests until ``requests`` closes. A failed request is answered with its error
    and the worker goes on; only a crash of the process itself ends it early."""
    worker = Worker()

    def send(**answer) -> None:
        answers.write(json.dumps(answer) + "\n")
        answers.flush()

    send(ready=True, pid=os.getpid())
    for line in requests:
        if not line.strip():
            continue
        request_id = None
        try:
            request = StepRequest.parse(line)
            request_id = request.id
            loaded = worker.run(request, lambda fraction, message: send(
                id=request.id, progress=round(float(fraction), 4), message=message))
            send(id=request.id, result=request.out, loaded=loaded)
        except InputError as error:
            send(id=request_id, error=str(error), input_error=True)
        except Exception as error:  # reported to the panel, with the details for a bug report
            send(id=request_id, error=f"{type(error).__name__}: {error}", input_error=False,
                 detail=traceback.format_exc())
    return 0


def main() -> int:
    """stdout carries the protocol only: anything else a library prints goes to stderr."""
    answers = sys.stdout
    sys.stdout = sys.stderr
    return serve(sys.stdin, answers)
