"""The nudge as the Slicer panel sees it: one slice up, re-segment, through a warm worker.

The panel's figure is request to result through the worker process (JSON line in, masks and
result.json written, answer line out), with the models and the CT already loaded; it sits in
bench.json beside the in-process nudge of the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import imaging
from .worker import StepRequest

LIB_PARENT = Path(__file__).resolve().parents[1]
WORKER_NUDGE_NOTE = ("worker_nudge_s: the Slicer panel's nudge, request to result through a warm "
                     "worker process (models and CT loaded), on the phantom's middle slice; "
                     "median of 'repeats' nudges.")


def _answer(worker: subprocess.Popen, request_id: int) -> dict:
    """The request's last answer (its result or error), progress lines skipped."""
    for line in worker.stdout:
        answer = json.loads(line)
        if answer.get("id") == request_id and ("result" in answer or "error" in answer):
            return answer
    raise RuntimeError("the worker ended without answering")


def time_worker_nudge(ct: Path, models_dir: Path, device: str | None = None,
                      repeats: int = 3) -> float:
    """Median seconds from a segment-muscle request on the next slice to its answer, after a
    first request on the middle slice loaded the models and the CT (timing does not depend
    on the slice)."""
    slice_k = imaging.read_ct(ct).GetSize()[2] // 2
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(LIB_PARENT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    with tempfile.TemporaryDirectory() as folder:
        worker = subprocess.Popen([sys.executable, "-m", "C3SarcopeniaLib", "worker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=environment)
        try:
            times = []
            for request_id in range(repeats + 1):  # the first one warms the worker up
                request = StepRequest(request_id, "segment_muscle", str(ct),
                                      str(Path(folder) / f"r{request_id}"),
                                      slice_k=slice_k + request_id % 2, models=str(models_dir),
                                      device=device or "auto")
                started = time.perf_counter()
                worker.stdin.write(request.line())
                worker.stdin.flush()
                answer = _answer(worker, request_id)
                if "error" in answer:
                    raise RuntimeError(f"the worker refused the nudge: {answer['error']}")
                times.append(time.perf_counter() - started)
        finally:
            worker.stdin.close()
            worker.wait(timeout=60)
    return sorted(times[1:])[len(times[1:]) // 2]
