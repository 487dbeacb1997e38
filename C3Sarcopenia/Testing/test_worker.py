"""The inference worker: its protocol in-process, and the Slicer-side client driving it as a
real child process on a phantom (progress, models kept loaded, Cancel, a crash)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")

from C3SarcopeniaLib.errors import Cancelled, InputError  # noqa: E402
from C3SarcopeniaLib.training import read_manifest  # noqa: E402
from C3SarcopeniaLib.worker import StepRequest, read_step_result, serve  # noqa: E402


def test_serve_answers_each_request_and_goes_on_after_a_bad_one(tiny_models, phantom_cohort,
                                                                 tmp_path):
    ct = read_manifest(phantom_cohort)[0]["ct"]
    requests = [
        "not json\n",
        StepRequest(1, "segment_muscle", str(ct), str(tmp_path / "a"), slice_k=None,
                    models=str(tiny_models)).line(),
        StepRequest(2, "find_c3", str(tmp_path / "missing.nii.gz"), str(tmp_path / "b"),
                    models=str(tiny_models)).line(),
        StepRequest(3, "segment_muscle", str(ct), str(tmp_path / "c"), slice_k=5,
                    clinical={"age_years": 60, "sex": "F", "height_cm": 165,
                              "weight_kg": 60}, models=str(tiny_models), folds=1).line(),
    ]
    answers = io.StringIO()
    assert serve(io.StringIO("".join(requests)), answers) == 0  # ends when stdin closes
    lines = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert lines[0]["ready"] and lines[0]["pid"] == os.getpid()
    errors = [line for line in lines if "error" in line]
    assert [e["id"] for e in errors] == [None, 1, 2] and all(e["input_error"] for e in errors)
    assert "no C3 slice" in errors[1]["error"] and "does not exist" in errors[2]["error"]
    assert any(line.get("id") == 3 and "progress" in line for line in lines)
    assert lines[-1] == {"id": 3, "result": str(tmp_path / "c"), "loaded": ["muscle"]}
    result = read_step_result(tmp_path / "c")
    assert result.step == "segment_muscle" and result.c3_slice_k == 5
    assert result.synthetic_models and result.fields["smi_cm2_m2"] is not None
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def client_and_ct(phantom_cohort):
    """A worker client on the venv's Python, and a phantom CT in a scene."""
    import slicer_stand_ins

    scene = slicer.vtkMRMLScene()
    slicer_stand_ins.install(scene)
    from C3SarcopeniaLib import imaging, mrml
    from C3SarcopeniaLib.slicerapp.worker_client import WorkerClient

    ct = mrml.add_volume_node(scene, imaging.read_ct(read_manifest(phantom_cohort)[0]["ct"]),
                              "phantom")
    client = WorkerClient(lambda: [sys.executable, "-m", "C3SarcopeniaLib", "worker"])
    yield client, ct
    client.stop()
    slicer_stand_ins.uninstall()


class Outcome:
    """What the callbacks of one request received."""

    def __init__(self):
        self.progress: list[str] = []
        self.result = None
        self.error: BaseException | None = None

    def callbacks(self):
        return (lambda fraction, message: self.progress.append(message),
                lambda result: setattr(self, "result", result),
                lambda error: setattr(self, "error", error))


def ask(client, ct, step: str, tiny_models, **fields) -> Outcome:
    outcome = Outcome()
    client.request(step, ct, *outcome.callbacks(), models=str(tiny_models), device="cpu",
                   folds=1, **fields)
    return outcome


def poll_until(client, condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "no answer in time"
        time.sleep(0.05)
        client.poll()


def test_progress_arrives_and_the_models_stay_loaded(client_and_ct, tiny_models):
    client, ct = client_and_ct
    first = ask(client, ct, "find_c3", tiny_models)
    poll_until(client, lambda: not client.busy)
    assert first.error is None, first.error
    assert any("Finding C3" in message for message in first.progress)
    assert first.result.loaded == ["section"] and first.result.mask.shape == \
        tuple(reversed(ct.GetImageData().GetDimensions()))
    pid = client.pid
    second = ask(client, ct, "segment_muscle", tiny_models, slice_k=first.result.c3_slice_k)
    poll_until(client, lambda: not client.busy)
    nudge = ask(client, ct, "segment_muscle", tiny_models, slice_k=first.result.c3_slice_k + 1)
    poll_until(client, lambda: not client.busy)
    assert second.result.loaded == ["muscle"] and nudge.result.loaded == []  # kept loaded
    assert client.pid == pid and nudge.result.c3_slice_k == first.result.c3_slice_k + 1
    assert not list(client._folder.glob("result-*")), "result folders are removed once read"


def test_cancel_ends_the_worker_at_once(client_and_ct, tiny_models):
    client, ct = client_and_ct
    client.stop()  # a cold worker: Cancel while it loads and computes
    outcome = ask(client, ct, "find_c3", tiny_models)
    pid, folder = client.pid, client._folder
    poll_until(client, lambda: outcome.progress)
    started = time.monotonic()
    client.cancel()
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome.error, Cancelled) and outcome.result is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not folder.exists(), "the worker's temporary files stay behind"


def test_a_crashed_worker_is_reported_and_the_next_request_starts_a_new_one(client_and_ct,
                                                                          tiny_models):
    client, ct = client_and_ct
    outcome = ask(client, ct, "find_c3", tiny_models)
    crashed = client.pid
    os.killpg(crashed, signal.SIGKILL)
    poll_until(client, lambda: not client.busy, 10)
    assert "stopped unexpectedly" in str(outcome.error) and outcome.result is None
    again = ask(client, ct, "find_c3", tiny_models)
    assert client.pid != crashed
    poll_until(client, lambda: not client.busy)
    assert again.error is None and again.result.c3_slice_k >= 0


def test_a_refused_request_keeps_the_worker(client_and_ct, tiny_models):
    client, ct = client_and_ct
    outcome = ask(client, ct, "segment_muscle", tiny_models, slice_k=10_000)
    pid = client.pid
    poll_until(client, lambda: not client.busy)
    assert isinstance(outcome.error, InputError) and "outside this CT" in str(outcome.error)
    assert client.pid == pid
