"""The inference worker seen from Slicer: started on first use, polled by a QTimer, killed at
once by Cancel.

``slicer.util.launchConsoleProcess`` (5.8, 5.10 and main) pipes the child's output but not its
stdin, which carries the requests; so the worker is started the way it starts PythonSlicer
(the same executable and environment, no console window on Windows) with stdin piped and
stdout going to a file in the worker's temporary folder. Each tick of the timer reads what
the file gained: no thread in Slicer's process, which would crawl (its main thread holds the
GIL while the event loop idles). Results are handed to the caller on the main thread, which
alone touches the scene.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import qt
import SimpleITK as sitk

from .. import mrml
from ..errors import Cancelled, InputError
from ..worker import StepRequest, StepResult, read_step_result

Progress = Callable[[float, str], None]
LIB_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds C3SarcopeniaLib


class WorkerFailed(RuntimeError):
    """The worker process ended without answering (a crash, or killed from outside)."""


def pythonSlicerCommand() -> list[str]:
    """The worker as Slicer's own Python runs it (as slicer.util.executePythonModule finds
    PythonSlicer: it is on the PATH inside Slicer)."""
    executable = shutil.which("PythonSlicer")
    if not executable:
        raise InputError("PythonSlicer was not found next to Slicer: reinstall 3D Slicer.")
    return [executable, "-m", "C3SarcopeniaLib", "worker"]


class WorkerClient:
    """One worker process at a time, one request at a time.

    ``request`` starts the worker when none runs; progress and the result (or the error) come
    back through the callbacks from the timer, on the main thread. A worker that dies without
    answering gives a WorkerFailed error; the next request starts a fresh one.
    """

    POLL_MS = 100

    def __init__(self, command: Callable[[], list[str]] | None = None):
        self._command = command  # None: PythonSlicer, found when the worker starts
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None
        self._answers_read = 0  # bytes of the answers file already handled
        self._partial = ""
        self._ct: tuple[tuple, str] | None = None  # (volume state, file) written for the worker
        self._next_id = 0
        self._pending: dict[str, Any] | None = None
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self.poll)

    @property
    def busy(self) -> bool:
        return self._pending is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def request(self, step: str, volumeNode, onProgress: Progress,
                onDone: Callable[[StepResult], None], onError: Callable[[BaseException], None],
                **fields) -> None:
        """Ask the worker for a step on the CT of ``volumeNode``; ``fields`` are the rest of
        a StepRequest (slice_k, clinical, models, device, folds, scm_nodal)."""
        if self.busy:
            raise InputError("a step is still running: wait for it or cancel it.")
        self._ensureStarted()
        ct = self._ctFile(volumeNode)  # a CT that cannot be handed over is refused here
        self._next_id += 1
        out = self._folder / f"result-{self._next_id}"
        out.mkdir()
        request = StepRequest(self._next_id, step, ct, str(out), **fields)
        self._pending = {"request": request, "progress": onProgress, "done": onDone,
                         "error": onError}
        try:
            self._process.stdin.write(request.line())
            self._process.stdin.flush()
        except OSError:
            pass  # the worker is gone: the next poll reports it
        self._timer.start()

    def cancel(self) -> None:
        """Kill the worker now; the pending step ends with Cancelled, the scene untouched."""
        pending = self._pending
        self.stop()
        if pending is not None:
            pending["error"](Cancelled())

    def stop(self) -> None:
        """Kill the worker (if any) and remove its temporary files; nothing is reported."""
        self._timer.stop()
        self._pending = None
        if self._process is not None:
            _killTree(self._process)
            try:
                self._process.stdin.close()
            except OSError:
                pass  # a pipe to a dead worker
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder, self._ct = None, None

    def run(self, step: str, volumeNode, timeoutS: float, **fields) -> StepResult:
        """A step waited for (scripts and the self-test; the panel lets the timer poll)."""
        outcome: list = []
        self.request(step, volumeNode, lambda fraction, message: None, outcome.append,
                     outcome.append, **fields)
        deadline = time.monotonic() + timeoutS
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)
            self.poll()
        if not outcome:
            self.stop()
            raise TimeoutError(f"{step} gave no answer in {timeoutS:.0f} s: it was stopped.")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def poll(self) -> None:
        """One tick: hand on the answers that came in; notice a worker that died."""
        for answer in self._newAnswers():
            self._handle(answer)
        if self._pending is not None and self._process is not None \
                and self._process.poll() is not None:
            for answer in self._newAnswers():  # the last lines it wrote before it ended
                self._handle(answer)
        if self._pending is not None and (self._process is None
                                          or self._process.poll() is not None):
            self._fail(WorkerFailed(self._deathMessage()))
        if self._pending is None:
            self._timer.stop()

    # the process

    def _ensureStarted(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.stop()
        command = (self._command or pythonSlicerCommand)()
        self._folder = Path(tempfile.mkdtemp(prefix="c3sarcopenia-worker-"))
        self._answers_read, self._partial = 0, ""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(LIB_PARENT)] + [p for p in [environment.get("PYTHONPATH")] if p])
        with open(self._folder / "answers.jsonl", "w") as answers, \
                open(self._folder / "worker.log", "w") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=answers, stderr=log, env=environment,
                cwd=str(self._folder), universal_newlines=True, **_detached())

    def _ctFile(self, volumeNode) -> str:
        """The CT written once per volume state: a nudge sends only its slice number."""
        imageData = volumeNode.GetImageData()
        state = (volumeNode.GetID(), volumeNode.GetMTime(),
                 imageData.GetMTime() if imageData is not None else 0)
        if self._ct is None or self._ct[0] != state:
            path = self._folder / f"ct-{self._next_id + 1}.nrrd"
            sitk.WriteImage(mrml.ct_from_volume_node(volumeNode), str(path))
            if self._ct is not None:
                Path(self._ct[1]).unlink(missing_ok=True)
            self._ct = (state, str(path))
        return self._ct[1]

    def _newAnswers(self) -> list[dict]:
        if self._folder is None:
            return []
        with open(self._folder / "answers.jsonl", "rb") as answers:
            answers.seek(self._answers_read)
            data = answers.read()
        self._answers_read += len(data)
        lines = (self._partial + data.decode("utf-8", "replace")).split("\n")
        self._partial = lines.pop()  # a line the worker is still writing
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                continue  # not a protocol line
        return [answer for answer in parsed if isinstance(answer, dict)]

    def _handle(self, answer: dict) -> None:
        pending = self._pending
        if pending is None or answer.get("id") != pending["request"].id:
            return
        if "progress" in answer:
            pending["progress"](float(answer["progress"]), str(answer.get("message", "")))
        elif "result" in answer:
            self._pending = None
            try:
                result = read_step_result(answer["result"], answer.get("loaded", []))
            except (OSError, ValueError, KeyError, RuntimeError) as error:
                pending["error"](WorkerFailed(f"the worker's result could not be read: {error}"))
                return
            finally:
                shutil.rmtree(answer["result"], ignore_errors=True)
            pending["done"](result)
        elif "error" in answer:
            self._fail(InputError(answer["error"]) if answer.get("input_error")
                       else WorkerFailed(f"{answer['error']}\n{answer.get('detail', '')}"))

    def _fail(self, error: BaseException) -> None:
        pending, self._pending = self._pending, None
        if isinstance(error, WorkerFailed) and (self._process is None
                                                or self._process.poll() is not None):
            self.stop()  # the next request starts a fresh worker
        elif pending is not None:
            shutil.rmtree(pending["request"].out, ignore_errors=True)
        if pending is not None:
            pending["error"](error)

    def _deathMessage(self) -> str:
        code = self._process.returncode if self._process is not None else None
        log = (self._folder / "worker.log") if self._folder is not None else None
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.is_file() else ""
        return (f"the computation stopped unexpectedly (worker exit status {code}); nothing was "
                "changed. Try again; if it happens again, report it with the details."
                + (f"\n{tail}" if tail else ""))


def _detached() -> dict:
    """A process group of its own, so that a kill reaches PythonSlicer's real Python too
    (PythonSlicer is a launcher that starts it as a child)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | 0x08000000}  # no window
    return {"start_new_session": True}


def _killTree(process: subprocess.Popen) -> None:
    """The worker and whatever it started: on POSIX its process group even when the launcher
    itself has already ended."""
    if os.name == "nt":
        if process.poll() is None:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)],
                           capture_output=True, creationflags=0x08000000)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()

