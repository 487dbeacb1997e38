"""Outputs: a folder that cannot take them is refused before any work, a failed or cut-short
run leaves no result (neither its own nor an older one), an OS error is one line, and the
command answers --help and refusals without loading torch (issue 18)."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import fileio, report
from C3SarcopeniaLib.cli import core, main
from C3SarcopeniaLib.phantoms.phantom import make_phantom
from conftest import ROOT

LIB_PATH = str(ROOT / "C3Sarcopenia")
LONG_NAME = "x" * 256
IMPOSSIBLE = ("/proc/c3sarcopenia-test/out", "/sys/c3sarcopenia-test/out")


@pytest.fixture(scope="module")
def measured_case(tmp_path_factory, small_phantom_options):
    """A small phantom CT with its muscle mask: `measure` runs in a second without models."""
    folder = tmp_path_factory.mktemp("case")
    phantom = make_phantom(3, "p3", small_phantom_options)
    sitk.WriteImage(phantom.ct, str(folder / "ct.nii.gz"))
    sitk.WriteImage(phantom.muscle_mask, str(folder / "muscle.nii.gz"))
    return folder, phantom.c3_slice_k


def measure_argv(case, out, mask=None):
    folder, k = case
    return ["measure", "--ct", str(folder / "ct.nii.gz"), "--mask",
            str(mask or folder / "muscle.nii.gz"), "--slice-k", str(k), "--out", str(out)]


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("c3sarcopenia: error:"), err
    return lines[0]


def leftovers(folder) -> list[str]:
    """Result files, temporary files and staging folders in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name in report.RESULT_FILES or p.name.startswith((".tmp-", ".partial-")))


def test_a_failed_rerun_leaves_no_previous_result_and_keeps_other_files(
        tmp_path, measured_case, capsys):
    out = tmp_path / "out"
    assert main(measure_argv(measured_case, out)) == 0
    (out / "c3_section.nii.gz").write_bytes(b"from an earlier predict")
    (out / "notes.txt").write_text("the user's own file")
    assert {"result.json", "muscle.nii.gz", "overlay.png"} <= set(leftovers(out))
    capsys.readouterr()
    empty = tmp_path / "empty.nii.gz"
    ct = sitk.ReadImage(str(measured_case[0] / "ct.nii.gz"))
    blank = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(ct)
    sitk.WriteImage(blank, str(empty))
    assert main(measure_argv(measured_case, out, mask=empty)) == 2
    assert "empty" in one_error_line(capsys.readouterr().err)
    assert leftovers(out) == []
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_a_successful_rerun_replaces_every_file_of_the_previous_result(tmp_path, measured_case):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c3_section.nii.gz").write_bytes(b"from an earlier predict")
    assert main(measure_argv(measured_case, out)) == 0
    assert leftovers(out) == ["muscle.nii.gz", "overlay.png", "result.json", "thumbnail.jpg"]


def test_a_run_that_fails_while_writing_leaves_nothing(tmp_path, measured_case, capsys,
                                                        monkeypatch):
    """The masks are written (into the staging folder) when the disk fills on the overlay."""
    def disk_full(figure, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report, "write_figure_atomic", disk_full)
    out = tmp_path / "new" / "out"
    assert main(measure_argv(measured_case, out)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "overlay.png" in line and "disk is full" in line
    assert not out.exists()  # made by this run and left empty: removed


def test_an_interrupted_write_leaves_nothing_and_exits_130(tmp_path, measured_case, capsys,
                                                           monkeypatch):
    def interrupted(figure, path):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    assert main(measure_argv(measured_case, out)) == 0
    capsys.readouterr()
    monkeypatch.setattr(report, "write_figure_atomic", interrupted)
    assert main(measure_argv(measured_case, out)) == 130
    assert "cancelled" in capsys.readouterr().err
    assert leftovers(out) == []


def bad_outputs(tmp_path) -> dict:
    """Every kind of --out that cannot take the outputs, and a word the refusal must say."""
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    return {"existing file": (a_file, "is a file"),
            "under a file": (a_file / "out", "under"),
            "name over 255 characters": (tmp_path / LONG_NAME, "255"),
            "/proc": (IMPOSSIBLE[0], "cannot be written"),
            "/sys": (IMPOSSIBLE[1], "cannot be written")}


def command_lines(tmp_path, out) -> dict:
    """Each command with inputs that do not exist: a refusal naming --out proves that the
    output was checked first, before any input was read or any model loaded."""
    missing = tmp_path / "missing"
    return {
        "predict": ["predict", missing, "--out", out],
        "measure": ["measure", "--ct", missing, "--mask", missing, "--out", out],
        "demo": ["demo", "--out", out],
        "evaluate": ["evaluate", "--manifest", missing, "--out", out],
        "ingest": ["ingest", missing, "--clinical", missing, "--out", out],
        "survival": ["survival", missing, "--time", "t", "--event", "e", "--sex", "s",
                     "--smi", "m", "--out", out],
        "train": ["train", "--manifest", missing, "--stage", "muscle", "--out", out],
        "review": ["review", missing, "--out", out],
        "muscle-sheets": ["muscle-sheets", missing, "--levels", missing, "--out", out],
        "muscle-draw": ["muscle-draw", missing, "--sheets", missing, "--out", out],
        "muscle-consensus": ["muscle-consensus", missing, "--sheets", missing, "--out", out],
        "bench": ["bench", "--out", out],
        "ingest-levels": ["ingest-levels", missing, "--out", out],
        "phantom": ["phantom", "--n", "1", "--out", out],
        "batch --save-dir": ["batch", missing, "--out", tmp_path / "table.csv",
                             "--save-dir", out],
    }


@pytest.mark.parametrize("kind", ["existing file", "under a file", "name over 255 characters",
                                  "/proc", "/sys"])
def test_an_unusable_out_is_refused_first_by_every_command(tmp_path, capsys, kind):
    out, word = bad_outputs(tmp_path)[kind]
    for name, argv in command_lines(tmp_path, out).items():
        assert main([str(a) for a in argv]) == 2, name
        line = one_error_line(capsys.readouterr().err)
        assert "--out" in line or "--save-dir" in line, (name, line)
        assert word in line, (name, line)
    assert not (tmp_path / "table.csv").exists()


def table_command_lines(tmp_path, table) -> dict:
    """The commands whose --out is a results table, with inputs that do not exist."""
    missing = tmp_path / "missing"
    return {"batch": ["batch", missing, "--out", table],
            "muscle-pick": ["muscle-pick", "--sheets", missing, "--out", table],
            "muscle-agreement": ["muscle-agreement", missing, "--sheets", missing,
                                 "--reader", "r", "--out", table]}


@pytest.mark.parametrize("out", ["folder", "under a file", "long", "/proc", "/sys"])
def test_an_unusable_results_table_is_refused_before_reading_inputs(tmp_path, capsys, out):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    table = {"folder": tmp_path, "under a file": a_file / "results.csv",
             "long": tmp_path / (LONG_NAME + ".csv"), "/proc": IMPOSSIBLE[0] + ".csv",
             "/sys": IMPOSSIBLE[1] + ".csv"}[out]
    for name, argv in table_command_lines(tmp_path, table).items():
        assert main([str(a) for a in argv]) == 2, name
        assert "--out" in one_error_line(capsys.readouterr().err), name


def unprivileged_prefix() -> list[str]:
    """As root, a command line prefix that drops the capability to override file permissions,
    so that a read-only folder refuses root as it refuses a user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot refuse")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]


def run_cli(argv, *, unprivileged=False, limit_bytes=None, timeout=120):
    """c3sarcopenia in a fresh process. ``unprivileged``: see unprivileged_prefix.
    ``limit_bytes``: a file size limit, the way to fill a disk without root (SIGXFSZ is
    ignored, so a write past it is cut short with EFBIG instead of killing the process)."""
    prefix = unprivileged_prefix() if unprivileged else []

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = dict(os.environ, PYTHONPATH=LIB_PATH, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*prefix, sys.executable, "-m", "C3SarcopeniaLib",
                           *[str(a) for a in argv]], capture_output=True, text=True, env=env,
                          timeout=timeout, preexec_fn=limit if limit_bytes else None)


EVERY_COMMAND_SCRIPT = """
import contextlib, io, json, sys
from C3SarcopeniaLib.cli import main
answers = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        answers[name] = [main(argv), err.getvalue()]
print(json.dumps(answers))
"""


def test_read_only_outputs_are_refused_by_every_command(tmp_path):
    """predict and the commands that write a table in their own processes (stderr read
    whole), then every command that writes a folder (evaluate, ingest, survival, train,
    review...) in one unprivileged process."""
    locked = tmp_path / "locked"
    locked.mkdir()
    table = locked / "results.csv"
    table.write_text("case_id\n")
    table.chmod(0o444)
    locked.chmod(0o555)
    commands = {name: [str(a) for a in argv]
                for name, argv in command_lines(tmp_path, locked / "out").items()}
    env = dict(os.environ, PYTHONPATH=LIB_PATH, PYTHONDONTWRITEBYTECODE="1")
    try:
        for argv in (["predict", tmp_path / "missing.nii.gz", "--out", locked / "out"],
                     ["predict", tmp_path / "missing.nii.gz", "--out", locked],
                     *table_command_lines(tmp_path, table).values(),
                     *table_command_lines(tmp_path, locked / "new.csv").values(),
                     ["batch-report", tmp_path / "missing.csv", "--out", locked / "page.html"]):
            finished = run_cli(argv, unprivileged=True)
            assert finished.returncode == 2, finished.stderr
            assert "cannot be written" in one_error_line(finished.stderr)
        finished = subprocess.run(
            [*unprivileged_prefix(), sys.executable, "-c", EVERY_COMMAND_SCRIPT,
             json.dumps(commands)], capture_output=True, text=True, env=env, timeout=120)
        answers = json.loads(finished.stdout.strip().splitlines()[-1])
    finally:
        locked.chmod(0o755)
    assert set(answers) == set(commands) and len(answers) == 15
    for name, (status, err) in answers.items():
        assert status == 2, (name, err)
        line = one_error_line(err)
        assert "cannot be written" in line and ("--out" in line or "--save-dir" in line), line
    assert sorted(p.name for p in locked.iterdir()) == ["results.csv"]


FULL_DISK_SCRIPT = """
import json, os, resource, signal, sys
import numpy as np
import SimpleITK as sitk
from C3SarcopeniaLib.fileio import write_image_atomic
folder, limit = sys.argv[1], int(sys.argv[2])
noise = np.random.default_rng(0).integers(0, 255, (8, 64, 64)).astype(np.uint8)
image = sitk.GetImageFromArray(noise)  # 32 kB that gzip cannot shrink
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
answer = {}
try:
    sitk.WriteImage(image, os.path.join(folder, "plain.nii.gz"), True)
    answer["plain_error"] = None
except Exception as error:
    answer["plain_error"] = type(error).__name__
answer["plain_size"] = os.path.getsize(os.path.join(folder, "plain.nii.gz"))
try:
    write_image_atomic(image, os.path.join(folder, "checked.nii.gz"))
    answer["checked"] = "written"
except OSError as error:
    answer["checked"] = [error.errno, error.filename]
print(json.dumps(answer))
"""


def test_a_short_write_never_takes_the_final_name(tmp_path):
    """The disk fills (a 4 kB file size limit) while a 32 kB image is written."""
    env = dict(os.environ, PYTHONPATH=LIB_PATH, PYTHONDONTWRITEBYTECODE="1")
    finished = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path), "4096"],
                              capture_output=True, text=True, env=env, timeout=120)
    answer = json.loads(finished.stdout.strip().splitlines()[-1])
    # The premise: the writer itself is cut short (silently, in today's SimpleITK).
    assert answer["plain_size"] == 4096 or answer["plain_error"] is not None
    assert answer["checked"] == [errno.EIO, str(tmp_path / "checked.nii.gz")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.nii.gz"]


@pytest.mark.parametrize("limit_bytes, words", [
    (1024, ["muscle.nii.gz", "cut short"]),   # SimpleITK's silent short write, caught
    (8192, ["overlay.png", "size limit"])])   # matplotlib's write, which fails aloud
def test_a_full_disk_gives_one_line_exit_2_and_no_result(tmp_path, measured_case,
                                                         limit_bytes, words):
    """The mask of this measure takes about 1.4 kB, the overlay over 100 kB."""
    out = tmp_path / "out"
    finished = run_cli(measure_argv(measured_case, out), limit_bytes=limit_bytes)
    assert finished.returncode == 2, finished.stderr
    line = one_error_line(finished.stderr)
    assert all(word in line for word in words), line
    assert leftovers(out) == []


def test_text_writes_are_checked_and_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    fileio.write_text_atomic(tmp_path / "r.json", "{\"csa_cm2\": 37.1}\n")
    assert (tmp_path / "r.json").read_text() == "{\"csa_cm2\": 37.1}\n" and synced
    with pytest.raises(OSError, match="cut short"):
        fileio.write_atomic(tmp_path / "empty.txt", lambda tmp: tmp.write_bytes(b""))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.ENAMETOOLONG, "too long"),
                                         (errno.EIO, "Input/output error")])
def test_an_unexpected_os_error_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, code,
                                                       words):
    def fails(args):
        raise OSError(code, os.strerror(code), str(tmp_path / "result.json"))

    monkeypatch.setattr(core, "run_predict", fails)
    assert main(["predict", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert words in line and "result.json" in line


HEAVY = ("torch", "monai", "matplotlib", "lifelines", "pandas", "skimage", "distributed")
PROBE = """
import json, sys
from C3SarcopeniaLib.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
heavy = %r
print(json.dumps({"status": status, "loaded": [m for m in heavy if m in sys.modules]}))
""" % (HEAVY,)


HELP_OF_EVERY_COMMAND = """
import argparse, contextlib, io, json, sys
from C3SarcopeniaLib.cli import build_parser, main
commands = next(a for a in build_parser()._actions
                if isinstance(a, argparse._SubParsersAction)).choices
answers = {}
for name in commands:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([name, "--help"])
        except SystemExit as exit_:
            answers[name] = [exit_.code, "usage: c3sarcopenia " + name in out.getvalue()]
heavy = %r
print(json.dumps({"answers": answers, "loaded": [m for m in heavy if m in sys.modules]}))
""" % (HEAVY,)


def test_the_help_of_every_sub_command_loads_no_heavy_library(tmp_path):
    env = dict(os.environ, PYTHONPATH=LIB_PATH, PYTHONDONTWRITEBYTECODE="1")
    finished = subprocess.run([sys.executable, "-c", HELP_OF_EVERY_COMMAND],
                              capture_output=True, text=True, env=env, timeout=120,
                              cwd=tmp_path)
    answer = json.loads(finished.stdout.strip().splitlines()[-1])
    assert answer["loaded"] == [], finished.stderr
    assert len(answer["answers"]) >= 15 and {"predict", "evaluate", "ingest", "survival",
                                             "train", "review", "batch"} <= set(answer["answers"])
    assert all(a == [0, True] for a in answer["answers"].values()), answer["answers"]


@pytest.mark.parametrize("argv, status", [
    (["--help"], 0), (["predict", "--help"], 0), (["batch", "--help"], 0),
    (["predict", "missing_ct.nii.gz", "--out", "{tmp}/out"], 2),
    (["batch", "{tmp}", "--out", "/proc/c3sarcopenia-test.csv"], 2),
    (["batch", "{tmp}", "--out", "/proc/c3sarcopenia-test.csv", "--workers", "2"], 2),
    (["batch", "{tmp}", "--out", "{tmp}/r.csv", "--workers", "-1"], 2),
    (["batch", "{tmp}", "--out", "{tmp}/r.csv", "--workers", "2", "--scheduler", "tcp://x:1"],
     2),
    (["survival", "missing.csv", "--time", "t", "--event", "e", "--sex", "s", "--smi", "m",
      "--out", "{tmp}/out"], 2)])
def test_help_and_instant_refusals_load_no_heavy_library(tmp_path, argv, status):
    env = dict(os.environ, PYTHONPATH=LIB_PATH, PYTHONDONTWRITEBYTECODE="1")
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, *[a.format(tmp=tmp_path) for a in argv]],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    answer = json.loads(finished.stdout.strip().splitlines()[-1])
    assert answer == {"status": status, "loaded": []}, finished.stderr
