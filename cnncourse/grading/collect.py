"""Collect: every student's notebook into nbgrader's place, repaired from the release, none dropped.

`collect(course, assignment)` runs before autograding. It looks at

- ``submitted/<student>/<assignment>/`` (JupyterHub's ``nbgrader collect``, or placed by hand):
  the folder's one notebook is graded whatever its name ("Copy of ex01_convolution.ipynb",
  "ex01_convolution (1).ipynb");
- ``downloaded/<assignment>/archive/`` (a learning platform's downloads, and zip archives of them):
  the student's id is the file name's first ``_``-separated part before the assignment's name
  (``alice_12345_ex01_convolution.ipynb`` -> ``alice``), or the folder or archive holding it;
  an instructor's ``FileNameCollectorPlugin.named_regexp`` (``nbgrader zip_collect``'s) wins;

and writes each submission as ``submitted/<student>/<assignment>/<assignment>.ipynb``, rebuilt on
the release notebook's nbgrader cells (matched by ``grade_id``):

- a cell whose nbgrader metadata names no release cell, or a cell already named by an earlier
  cell, loses its metadata and stays as the student's plain cell (nbgrader would stop on it);
- a cell the release has keeps the release's metadata (points, locked, checksum, type), and a
  locked cell (set-up, tests) the release's source;
- a release cell the notebook lacks (answer, test or set-up cell) is put back after the cell that
  precedes it in the release: an answer cell as the release's stub, so that task scores 0;
- the release's first cell, the locked set-up cell, goes back to the top;
- outputs and other cell metadata are dropped (autograde clears them anyway).

The student's files that collect replaced, renamed or set aside are kept, byte for byte, in
``originals/<assignment>/<student>/`` at the course's top, with the record of what was done
(``collect.json``), so a second run (``--verify``) changes nothing and reports the same record.
They are kept outside ``submitted/`` on purpose: nbgrader copies every other file of a submission
into ``autograded/`` and from there into ``feedback/``, which goes back to the student. So the
submission folder keeps only the notebook to grade (and nbgrader's ``timestamp.txt``): any other
file the student handed in (data, notes, a second notebook) is moved to the originals too, never
returned and never seen by the jailed kernel. A file that is not a notebook (not JSON, or no
cells) is a failure of that student, recorded with its reason; the batch goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import unicodedata
import zipfile
from pathlib import Path

import nbformat

from cnncourse.grading.repair import MAX_BYTES, NotANotebook, grade_ids, repair

__all__ = ["collect", "originals", "student_from_name", "release_notebooks"]

ORIGINALS = "originals"  # originals/<assignment>/<student>/: what the student handed in
RECORD = "collect.json"
TIMESTAMP = "timestamp.txt"  # nbgrader's record of the hand-in time: stays in the submission
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


# --- the release ---------------------------------------------------------------------------------


def _config(course: Path) -> dict:
    """The course's nbgrader configuration (``nbgrader_config.py``), as a plain dict."""
    config = course / "nbgrader_config.py"
    if not config.is_file():
        return {}
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(config.name, path=str(course)).load_config()


def release_notebooks(course: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    """The assignment's released notebooks by name (without ``.ipynb``)."""
    release = _config(course).get("CourseDirectory", {}).get("release_directory") or "release"
    folder = course / release / assignment
    found = {p.stem: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}
    if not found:
        raise FileNotFoundError(
            f"no released notebook in {folder}: run `nbgrader generate_assignment {assignment}`"
        )
    return found


# --- where the notebooks are, and whose they are --------------------------------------------------


def _is_notebook_name(name: str) -> bool:
    return ".ipynb" in name.lower() and not name.startswith(".")


def _safe_id(raw: str) -> str | None:
    """A student id that nbgrader's folders and globs take: ASCII letters, digits, ``. _ @ -``."""
    ascii_ = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", ascii_).strip("._-")
    return safe if safe and _SAFE_ID.match(safe) else None


def student_from_name(name: str, assignment: str, folder: str = "") -> str | None:
    """The student's id in a learning platform's file name, or else in the folder that holds it.

    ``alice_12345_ex01_convolution.ipynb`` -> ``alice``: the first ``_``-separated part before the
    assignment's name (platforms put the student first). A name without such a part
    (``ex01_convolution.ipynb``, ``Copy of notebook.ipynb``) takes the id from `folder` (the name of
    an archive or a folder, read the same way).
    """
    stem = re.split(r"\.ipynb", name, flags=re.IGNORECASE)[0]
    at = stem.lower().find(assignment.lower())
    prefix = (stem[:at] if at >= 0 else stem).strip(" _-")
    if at < 0 and "_" not in prefix:
        prefix = ""  # no assignment and no "_": nothing says whose it is
    if prefix:
        return _safe_id(prefix.split("_")[0])
    if not folder:
        return None
    return student_from_name(folder, assignment) if "_" in folder else _safe_id(folder)


def _owner(relative: str, assignment: str, regexp: str | None, folder: str) -> str:
    """The student of a download at `relative` (its path in the archive folder, or zip member)."""
    name = Path(relative).name
    if regexp:  # the instructor's expression, as `nbgrader zip_collect` reads it
        match = re.match(regexp, relative) or re.match(regexp, name)
        found = match.groupdict().get("student_id") if match else None
        return (_safe_id(found) or "") if found else ""
    return student_from_name(name, assignment, folder) or ""


def _downloads(course: Path, assignment: str, regexp: str | None) -> list[tuple[str, str, bytes]]:
    """(student, where, bytes) of every notebook in the downloads ("" when no student is found)."""
    archive = course / "downloaded" / assignment / "archive"
    paths = sorted(p for p in archive.rglob("*") if p.is_file()) if archive.is_dir() else []
    found = []
    for path in paths:
        where, relative = str(path.relative_to(course)), str(path.relative_to(archive))
        folder = path.parent.name if path.parent != archive else ""
        if path.suffix.lower() == ".zip":
            found += _unzip(path, where, assignment, regexp)
        elif _is_notebook_name(path.name):
            data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else _TOO_LARGE
            found.append((_owner(relative, assignment, regexp, folder), where, data))
    return found


_TOO_LARGE = b"\x00 not read: larger than the limit"  # repair finds it is not a notebook


def _unzip(path: Path, where: str, assignment: str, regexp: str | None) -> list:
    found = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or not parts or ".." in parts or not _is_notebook_name(parts[-1]):
                    continue
                data = archive.read(info) if info.file_size <= MAX_BYTES else _TOO_LARGE
                folder = parts[-2] if len(parts) > 1 else path.stem
                owner = _owner(info.filename, assignment, regexp, folder)
                found.append((owner, f"{where}:{info.filename}", data))
    except (zipfile.BadZipFile, OSError) as error:
        found.append(("", f"{where} (not a readable zip archive: {error})", b""))
    return found


# --- collect --------------------------------------------------------------------------------------


def _pick(paths: list[Path], release: nbformat.NotebookNode) -> Path:
    """Of several notebooks, the one with most of the release's cells, then the newest."""
    ids = {c.metadata.nbgrader["grade_id"] for c in release.cells if "nbgrader" in c.metadata}

    def score(path: Path) -> tuple:
        return len(ids & grade_ids(path.read_bytes())), path.stat().st_mtime, path.name

    return max(paths, key=score)


def originals(course: Path, assignment: str, student: str) -> Path:
    """Where collect keeps what `student` handed in: ``originals/<assignment>/<student>/``."""
    return Path(course) / ORIGINALS / assignment / student


def _keep_original(keep: Path, name: str, data: bytes) -> None:
    """Keep a student's file in `keep` (under a new name if another one is there)."""
    keep.mkdir(parents=True, exist_ok=True)
    target, n = keep / name, 1
    while target.exists() and target.read_bytes() != data:
        target, n = keep / f"{n}-{name}", n + 1
    target.write_bytes(data)


def _set_aside(folder: Path, keep: Path, target: Path) -> list[str]:
    """Move every file of the submission `folder` that is neither a notebook nor `target` nor
    nbgrader's timestamp to `keep` (their paths kept); what was moved, in words."""
    actions = []
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        relative = path.relative_to(folder)
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # empty once its files are set aside
            continue
        if (
            path == target
            or relative == Path(TIMESTAMP)
            or (path.parent == folder and _is_notebook_name(path.name))
        ):
            continue
        if path.is_symlink():
            path.unlink()  # nothing of it is read: it may point anywhere
            actions.append(f"a link, {str(relative)!r}, removed")
            continue
        (keep / relative).parent.mkdir(parents=True, exist_ok=True)
        _keep_original((keep / relative).parent, path.name, path.read_bytes())
        path.unlink()
        actions.append(f"a file that is not graded, {str(relative)!r}, kept in the originals")
    return actions


def _collect_one(folder: Path, keep: Path, name: str, release: nbformat.NotebookNode) -> dict:
    """Make ``folder/<name>.ipynb`` ready to grade from the notebooks in `folder`; the record.

    What the student handed in and collect changed or set aside goes to `keep`.
    """
    target, record_path = folder / f"{name}.ipynb", keep / RECORD
    previous = json.loads(record_path.read_text()) if record_path.is_file() else None
    aside = _set_aside(folder, keep, target)
    others = [p for p in sorted(folder.iterdir()) if p.is_file() and _is_notebook_name(p.name)]
    others = [p for p in others if p != target]
    # the target wins, unless collect wrote it and something new was handed in beside it
    if target.is_file() and (not others or previous is None):
        chosen = target
    elif others:
        chosen = _pick(others, release)
    else:  # nothing to grade: what an earlier run found stands (a file that was no notebook)
        return previous or {
            "status": "failed",
            "reason": "no notebook in the folder",
            "actions": aside,
        }
    data, actions = chosen.read_bytes(), aside
    digest = hashlib.sha256(data).hexdigest()
    if chosen != target:
        actions.append(f"{chosen.name!r} graded as {target.name!r}")
    for path in others:
        _keep_original(keep, path.name, path.read_bytes())
        path.unlink()
        if path != chosen:
            actions.append(f"another notebook, {path.name!r}, not graded (kept in the originals)")
    try:
        nb, repairs = repair(data, release)
    except NotANotebook as error:
        if chosen == target:
            _keep_original(keep, chosen.name, data)
            target.unlink()
        reason = f"{chosen.name!r} is not a notebook: {error}"
        record = {"status": "failed", "reason": reason, "source": chosen.name, "sha256": digest,
                "actions": actions}  # fmt: skip
        keep.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        return record
    actions += repairs
    text = nbformat.writes(nb) + "\n"
    if chosen == target and text.encode() == data:
        if previous is not None and not aside:
            return previous  # a second run: the first run's record stands
    else:
        if chosen == target:
            _keep_original(keep, chosen.name, data)
        target.write_text(text)
    record = {"status": "collected", "notebook": target.name, "source": chosen.name,
              "sha256": digest, "actions": actions}  # fmt: skip
    if keep.is_dir():
        record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _place_download(folder: Path, keep: Path, name: str, data: bytes) -> bool:
    """Put a download in the student's folder, unless collect has already had it (in `keep`)."""
    if (keep / name).is_file() and (keep / name).read_bytes() == data:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return True


def collect(course: Path, assignment: str, named_regexp: str | None = None) -> dict[str, dict]:
    """Every submission of `assignment` ready for ``nbgrader autograde``; per student, a record.

    A record has ``status`` (``"collected"`` or ``"failed"``), ``actions`` (what was done, in
    words), ``reason`` (of a failure), ``source`` and ``sha256`` (the student's file), and
    ``downloads`` (where a learning platform's files came from). A download whose student cannot
    be told is recorded under the key ``"?<where it is>"``, as a failure.
    """
    course = Path(course)
    releases = release_notebooks(course, assignment)
    regexp = named_regexp or _config(course).get("FileNameCollectorPlugin", {}).get("named_regexp")
    records: dict[str, dict] = {}
    submitted = course / "submitted"
    for owner, where, data in _downloads(course, assignment, regexp):
        if not owner:
            reason = f"no student id in the name {where!r}"
            records[f"?{where}"] = {"status": "failed", "actions": [], "reason": reason}
            continue
        name = Path(where.split(":")[-1]).name
        name = f"download-{name}" if name in {f"{n}.ipynb" for n in releases} else name
        keep = originals(course, assignment, owner)
        _place_download(submitted / owner / assignment, keep, name, data)
        records.setdefault(owner, {}).setdefault("downloads", []).append(where)
    students = sorted(p.name for p in submitted.iterdir()) if submitted.is_dir() else []
    for student in students:
        folder = submitted / student / assignment
        if not folder.is_dir():
            continue
        record = records.setdefault(student, {})
        keep = originals(course, assignment, student)
        if not _SAFE_ID.match(student):
            reason = f"student id {student!r}: rename the folder (letters, digits, . _ @ -)"
            record.update(status="failed", actions=[], reason=reason)
        elif len(releases) == 1:
            ((name, release),) = releases.items()
            record.update(_collect_one(folder, keep, name, release))
        else:  # several notebooks: each is found by its own name only
            each = record["notebooks"] = {
                name: _collect_one(folder, keep / name, name, release)
                if (folder / f"{name}.ipynb").is_file()
                else {"status": "failed", "reason": f"no {name}.ipynb", "actions": []}
                for name, release in releases.items()
            }
            failed = all(r["status"] == "failed" for r in each.values())
            record.update(status="failed" if failed else "collected", actions=[])
    return records
