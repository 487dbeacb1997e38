"""Writing outputs so that a reader never finds half a result, nor an old result passing for
a new one: output locations checked before any work, atomic writes checked on disk, result
folders staged and switched in at the end, one writer per table. And reading the project's
CSV tables."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import os
import shutil
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import InputError

NAME_MAX_BYTES = 255    # the longest file or folder name the usual file systems allow
PATH_MAX_BYTES = 4096
STAGING_PREFIX = ".partial-"
_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere",
    errno.EFBIG: "the file is larger than this system lets this program write (a file size "
                 "limit): write elsewhere or raise the limit",
    errno.EACCES: "permission denied: write to a folder you own",
    errno.EPERM: "not permitted: write to a folder you own",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.ENAMETOOLONG: "a name in the path is too long: use shorter names",
    errno.ENOTDIR: "part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file is expected: check the path",
}


def os_error_line(error: OSError) -> str:
    """An operating-system error as one line for a clinician: where, what, what to do."""
    advice = _ADVICE.get(error.errno) or (error.strerror or str(error)).rstrip(".")
    return f"{error.filename}: {advice}." if error.filename else f"{advice}."


def read_csv_rows(path: str | Path, required: tuple[str, ...],
                  described_as: str) -> list[tuple[int, dict]]:
    """(line where the row ends, row) of a CSV; a missing file or column is refused with
    the header the file needs. ``described_as`` names the file for a reader: 'a readings CSV'."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}: "
                         f"give {described_as}.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path.name} lacks the column(s) {', '.join(missing)}: "
                                 f"{described_as} starts with the line {','.join(required)}.")
            return [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error):
        raise InputError(f"{path} is not a CSV text table: give {described_as} (saved as "
                         "CSV, UTF-8).") from None


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any work, a folder that cannot take the outputs: a file, a path under a
    file, too long a name, a place this user or system cannot write (read-only, /proc)."""
    path = Path(path)
    _check_length(path, option)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder: give a folder for the "
                         "outputs.")
    _check_writable(path if path.is_dir() else _nearest_folder(path, option), path, option)
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """As check_output_folder, for an output file (a results table) and the folder it is in."""
    path = Path(path)
    _check_length(path, option)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder: give the name of a file to write.")
    _check_writable(_nearest_folder(path, option), path, option)
    if path.exists():
        try:  # opening to append changes nothing, yet fails where the file is read-only
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as error:
            raise InputError(f"{option} {path} cannot be written: "
                             f"{os_error_line(error)}") from None
    return path


def _check_length(path: Path, option: str) -> None:
    too_long = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX_BYTES]
    if too_long:
        raise InputError(f"{option}: the name {too_long[0][:40]}... has "
                         f"{len(os.fsencode(too_long[0]))} characters, more than the "
                         f"{NAME_MAX_BYTES} a file system allows: use a shorter name.")
    if len(os.fsencode(os.path.abspath(path))) >= PATH_MAX_BYTES:
        raise InputError(f"{option}: the path is longer than the {PATH_MAX_BYTES} characters a "
                         "file system allows: use a shorter path.")


def _nearest_folder(path: Path, option: str) -> Path:
    """The deepest existing folder of a path still to be made (refused under a file)."""
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {path} lies under {parent}, which is a file: give "
                                 "a path in a folder.")
            return parent
    raise InputError(f"{option} {path}: no part of this path exists.")


def _check_writable(folder: Path, path: Path, option: str) -> None:
    """Create and remove a file in ``folder``: the only test that holds for every user and
    file system (permission bits do not bind root, /proc and /sys refuse files anyway)."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"{option} {path} cannot be written: {folder} takes no new files "
                         f"({error.strerror}); give a folder you can write to.") from None


def write_atomic(path: Path, write: Callable[[Path], None],
                 verify: Callable[[Path], None] | None = None) -> None:
    """Call ``write`` on a temporary name beside ``path``, check what reached the disk (not
    empty; ``verify`` for more), fsync it, then rename it into place: a full disk can cut a
    file short without an error from the writer (SimpleITK's reports none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        if tmp.stat().st_size == 0:
            raise _cut_short(path)
        if verify is not None:
            verify(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as error:
        if error.filename is None:  # Python's own write errors name no file: say which
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _cut_short(path: Path) -> OSError:
    return OSError(errno.EIO, "the file was cut short while being written (is the disk full?): "
                              "free space or write elsewhere", str(path))


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDWR)  # Windows flushes only a file open for writing
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def csv_text(columns: Iterable[str], rows: list[dict], header: bool = True) -> str:
    """Dict rows as CSV text, a field a row lacks left empty, lines ended by '\\n': every
    table the tool writes looks the same."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv_atomic(path: Path, columns: Iterable[str], rows: list[dict]) -> None:
    write_text_atomic(path, csv_text(columns, rows))


def write_text_atomic(path: Path, text: str) -> None:
    data = text.encode("utf-8")

    def verify(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise _cut_short(Path(path))

    write_atomic(Path(path), lambda tmp: tmp.write_bytes(data), verify)


def write_image_atomic(image, path: Path) -> None:
    """SimpleITK picks the format from the name, so the temporary file keeps the suffix.
    It says nothing when the disk fills, so the file is read back before it takes its name."""
    import SimpleITK as sitk

    from .image_files import quiet_itk

    path = Path(path)

    def write(tmp: Path) -> None:
        try:
            with quiet_itk():
                sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError:  # ITK's message is pages of C++; the cause is the disk or folder
            raise OSError(errno.EIO, "the image could not be written: check that the folder "
                                     "is writable and the disk not full", str(path)) from None

    write_atomic(path, write, lambda tmp: _check_image_file(tmp, image, path))


def _check_image_file(tmp: Path, image, path: Path) -> None:
    """A .gz must decompress to its end; other formats must read back as the same image."""
    import numpy as np
    import SimpleITK as sitk

    from .image_files import quiet_itk

    if tmp.name.endswith(".gz"):
        try:
            with gzip.open(tmp, "rb") as stream:
                while stream.read(1 << 22):
                    pass
        except (EOFError, OSError, zlib.error):
            raise _cut_short(path) from None
        return
    try:
        with quiet_itk():
            written = sitk.ReadImage(str(tmp))
    except RuntimeError:
        raise _cut_short(path) from None
    if not np.array_equal(sitk.GetArrayViewFromImage(written), sitk.GetArrayViewFromImage(image)):
        raise _cut_short(path)


def write_figure_atomic(figure, path: Path) -> None:
    write_atomic(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def remove_outputs(out_dir: str | Path, names: tuple[str, ...]) -> None:
    """Before a run's work starts: remove the previous run's outputs (``names[0]``, the file
    that says a run finished, first) and any staging folder a killed run left, so that no old
    result can pass for the one this run is about to make."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return
    _unlink(out_dir, names)
    for stale in out_dir.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _unlink(out_dir: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (out_dir / name).unlink(missing_ok=True)


@contextmanager
def staged_outputs(out_dir: str | Path, replaces: tuple[str, ...]) -> Iterator[Path]:
    """A fresh folder to write a run's files into, switched into ``out_dir`` when the block
    ends well: the previous ``replaces`` are removed (``replaces[0]``, the file that says the
    run finished, first) and the new files renamed in, that one last. When the block fails
    the previous ``replaces`` are removed too, and nothing of the block stays (nor ``out_dir``
    if this call made it): a failed rerun leaves no result that could pass for its own.

    Files are switched in one by one, not the folder as a whole, because ``--out`` may be a
    folder holding other files (even the CT itself) that must survive."""
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        yield staging
    except BaseException:
        _unlink(out_dir, replaces)  # the previous result is not this run's either
        raise
    else:
        _unlink(out_dir, replaces)
        marker = replaces[0]
        for name in sorted(p.name for p in staging.iterdir() if p.name != marker):
            os.replace(staging / name, out_dir / name)
        if (staging / marker).exists():
            os.replace(staging / marker, out_dir / marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            remove_if_empty(out_dir)


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


@contextmanager
def sole_writer(path: str | Path) -> Iterator[None]:
    """Hold an OS lock (fcntl on POSIX, msvcrt on Windows) while this process writes the table
    ``path``: a second run on it is refused at once instead of writing every row twice. The
    lock is taken on a hidden file beside the table, because the table itself is replaced
    when a rerun drops rows; that file stays (removing it would let two runs lock two files)."""
    path = Path(path)
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(lock):
            raise InputError(f"{path} is being written by another run{_holder(lock)}: wait "
                             "for it to end, or give another --out.")
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(lock)  # closing releases the lock


def _holder(lock: int) -> str:
    """' (process N)' as the holder wrote it; empty where the lock hides it (Windows)."""
    try:
        pid = os.read(lock, 32).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid else ""


def _try_lock(handle: int) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
