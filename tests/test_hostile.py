"""The hostile corpus (tests/hostile/) graded end to end by ``cnncourse grade``: exact scores, no
side effects.

One temporary course per assignment (the repository's nbgrader_config.py and solutions/, the
release generated there by nbgrader, so a real gradebook), every case of the manifest handed in
as its student would (by hand, under another name, as a learning platform's download, in a zip),
then one ``cnncourse grade`` batch per course, the two courses at the same time. Each case's
score is asserted per test cell: the manifest names the cells that must score 0, every other
cell must earn its points as the solution notebook states them. The honest controls are graded
last (their ids sort last), after the daemons, in the same batch. Around the batch: the course's
solutions/ and nbgrader_config.py, the gradebook's definitions (assignment, cells, points,
checksums), the cnncourse package and the IPython startup folders of the real HOME are hashed,
and must not change; no process a case left behind may survive.

The cases are read as text and applied to notebooks (`build`); their code runs only inside the
graded kernels, never in this process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

CORPUS = ROOT / "tests" / "hostile"
MANIFEST = tomllib.loads((CORPUS / "manifest.toml").read_text())
ASSIGNMENTS = ("ex01_convolution", "ex03_pooling")
# Seconds a cell may run: the first cell imports torch in the jail while the other course does
# the same on two shared cores; the two loops of the corpus each cost this much once.
TIMEOUT = 60
LEFT_BEHIND = "86399.4242"  # the argument of process_flood's sleeping processes
# pytest-timeout's limit for the first slow test, which waits for the whole batch (measured
# 2026-12-06 on 2 cores shared with other work, load 20-29: 27 minutes, ex01's 23 submissions in
# 1619 s and ex03's 15 in 1299 s, the two courses at the same time)
BATCH_LIMIT = 3600
# every kind of case that issue 12 names: the corpus must cover each one
KINDS = {
    "honest control", "input transformer", "AST transformer", "grading helpers replaced",
    "grading helpers wrapped", "fake judge", "exec of solutions/", "daemon edits gradebook.db",
    "daemon kills other students' judges", "IPython startup file in HOME",
    "deleted set-up cell", "torch operator by another name", "torch operator, 3-D variant",
    "torch operator, adaptive variant", "torch operator, lower-level entry point",
    "guard turned off", "answers by looping the visible check", "kernel exits (os._exit)",
    "kernel exits (exit())", "ignores the interrupt", "infinite loop", "print flood",
    "fork bomb (bounded stand-in)", "memory hog", "file name", "metadata", "not valid JSON",
    "answer cell deleted with its test",
}  # fmt: skip


def student(case: str) -> str:
    return case.replace("_", "-")


# --- building a case's notebook -----------------------------------------------------------------


def solution(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)


def find(nb: nbformat.NotebookNode, name: str) -> int:
    """The index of the cell with this grade id (or, failing that, this cell id)."""
    for index, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == name:
            return index
    return next(i for i, c in enumerate(nb.cells) if c.get("id") == name)


def base(assignment: str, which: str) -> nbformat.NotebookNode:
    """The release as generated (`release`), or with every answer cell as the solution writes it
    (`honest`: what a student who solved it hands in)."""
    nb = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    if which == "honest":
        for c in solution(assignment).cells:
            meta = c.metadata.get("nbgrader", {})
            if meta.get("solution") and c.cell_type == "code":
                lines = [line for line in c.source.splitlines() if "### " not in line]
                nb.cells[find(nb, meta["grade_id"])].source = "\n".join(lines)
    return nb


def edits(case: str) -> list[tuple[list[str], str]]:
    """A case file's edits: (``["append", "sizes"]``, code) per ``# %%`` marker."""
    found, words, body = [], None, []
    for line in (CORPUS / f"{case}.py").read_text().splitlines():
        if line.startswith("# %% "):
            if words:
                found.append((words, "\n".join(body).strip("\n")))
            words, body = line[5:].split(), []
        elif words is not None:
            body.append(line)
    if words:
        found.append((words, "\n".join(body).strip("\n")))
    return found


def build(case: str) -> nbformat.NotebookNode:
    import ast

    spec = MANIFEST[case]
    nb, last = base(spec["assignment"], spec["base"]), None
    for words, code in edits(case):
        op, target = words[0], words[-1]
        if op == "nbgrader":
            cell = last if target == "+" else nb.cells[find(nb, target)]
            meta = cell.metadata.setdefault("nbgrader", {"schema_version": 3})
            for key, value in ast.literal_eval(code).items():
                meta.pop(key) if value is None else meta.__setitem__(key, value)
            continue
        at = find(nb, target)
        if op in ("replace", "prepend", "append"):
            old = nb.cells[at].source
            new = {"replace": code, "prepend": f"{code}\n\n{old}", "append": f"{old}\n\n{code}"}
            nb.cells[at].source = new[op]
        elif op == "delete":
            del nb.cells[at]
        elif op in ("before", "after"):
            last = nbformat.v4.new_code_cell(code)
            nb.cells.insert(at + (op == "after"), last)
        elif op == "copy":  # copy <id> before <id>
            last = nbformat.from_dict(json.loads(json.dumps(nb.cells[find(nb, words[1])])))
            last.id = f"copy-{last.id}"
            nb.cells.insert(at, last)
        elif op == "type":
            cell = nb.cells[at]
            cell.cell_type = ast.literal_eval(code)
            if cell.cell_type == "markdown":
                cell.pop("outputs"), cell.pop("execution_count")
        else:
            raise ValueError(f"{case}: unknown edit {words}")
    return nb


def hand_in(course: Path, case: str) -> None:
    """Put the case's notebook where its student (or the learning platform) leaves it."""
    spec, who = MANIFEST[case], student(case)
    a = spec["assignment"]
    data = nbformat.writes(build(case)).encode()
    if "truncate" in spec:
        data = data[: spec["truncate"]]
    if "download" in spec or "zip" in spec:
        archive = course / "downloaded" / a / "archive"
        archive.mkdir(parents=True, exist_ok=True)
        if "download" in spec:
            (archive / spec["download"].format(student=who)).write_bytes(data)
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as z:
                z.writestr(spec["zip"].format(student=who), data)
            (archive / f"batch-{who}.zip").write_bytes(buffer.getvalue())
        return
    folder = course / "submitted" / who / a
    folder.mkdir(parents=True)
    (folder / spec.get("file", f"{a}.ipynb")).write_bytes(data)


# --- what must not change -----------------------------------------------------------------------


def tree_hash(*paths: Path) -> dict[str, str]:
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" not in p.parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def definitions(course: Path) -> dict[str, list]:
    """The gradebook's assignment, notebooks and cells (points, checksums, sources)."""
    tables = ("assignment", "notebook", "base_cell", "grade_cells", "solution_cells", "source_cell")
    with sqlite3.connect(course / "gradebook.db") as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in tables}


def startup_folders() -> list[Path]:
    return sorted((Path.home() / ".ipython").glob("profile_*/startup"))


def guarded(course: Path) -> dict:
    return {
        "files": tree_hash(course / "solutions", course / "nbgrader_config.py"),
        "package": tree_hash(ROOT / "cnncourse"),
        "home": tree_hash(*startup_folders()),
        "gradebook": definitions(course),
    }


def left_behind() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and LEFT_BEHIND in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# --- grading ------------------------------------------------------------------------------------


def run(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(Path(sys.executable).parent / "cnncourse"), *args]
    return subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)


def grade_course(course: Path, assignment: str) -> dict:
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([nbgrader, "generate_assignment", assignment], cwd=course, env=env, check=True,
                   capture_output=True)  # fmt: skip
    for case, spec in MANIFEST.items():
        if spec["assignment"] == assignment:
            hand_in(course, case)
    before = guarded(course)
    start = time.perf_counter()
    done = run(course, "grade", assignment, "--course", str(course), "--timeout", str(TIMEOUT))
    seconds = time.perf_counter() - start
    return {"course": course, "run": done, "seconds": seconds, "before": before,
            "after": guarded(course)}  # fmt: skip


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both courses graded at the same time; {assignment: what happened}."""
    base_dir = tmp_path_factory.mktemp("hostile")
    with ThreadPoolExecutor(len(ASSIGNMENTS)) as pool:
        runs = {a: pool.submit(grade_course, base_dir / a, a) for a in ASSIGNMENTS}
        results = {a: r.result() for a, r in runs.items()}
    time.sleep(1)  # a daemon that outlived its jail would still be there
    results["left_behind"] = left_behind()
    for pid in results["left_behind"]:  # never leave them on the machine
        os.kill(pid, signal.SIGKILL)
    for folder in startup_folders():
        (folder / "00-cnncourse-hostile-corpus.py").unlink(missing_ok=True)
    for a in ASSIGNMENTS:
        print(f"{a}: {len(cases_of(a))} submissions in {results[a]['seconds']:.0f} s")
    return results


def cases_of(assignment: str) -> list[str]:
    return [c for c, spec in MANIFEST.items() if spec["assignment"] == assignment]


def points(assignment: str) -> dict[str, float]:
    """Each test cell's points, from the solution notebook."""
    return {
        m["grade_id"]: float(m["points"])
        for c in solution(assignment).cells
        if (m := c.metadata.get("nbgrader", {})).get("grade") and not m.get("solution")
    }


def scores(course: Path, assignment: str, who: str) -> dict[str, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            nb = gb.find_submission_notebook(assignment, assignment, who)
        except MissingEntry:
            return None
        return {g.name: g.score for g in nb.grades}


# --- the tests ----------------------------------------------------------------------------------


def test_the_corpus_covers_every_kind_on_both_exercises() -> None:
    assert len(MANIFEST) >= 30
    assert {spec["kind"] for spec in MANIFEST.values()} == KINDS
    assert {spec["assignment"] for spec in MANIFEST.values()} == set(ASSIGNMENTS)
    files = {p.stem for p in CORPUS.glob("*.py")}
    assert files == set(MANIFEST)
    for case, spec in MANIFEST.items():
        assert spec["base"] in ("honest", "release") and spec["reason"], case
        tests = points(spec["assignment"])
        assert spec["zero"] == "all" or set(spec["zero"]) <= set(tests), case
        assert build(case).cells, case  # every edit applies


def test_every_edit_changes_the_notebook() -> None:
    """A case whose edits did nothing would test nothing: each one differs from its base."""
    for case, spec in MANIFEST.items():
        if spec["kind"] == "honest control":
            assert not edits(case), case
            continue
        plain = nbformat.writes(base(spec["assignment"], spec["base"]))
        changed = edits(case) or {"file", "download", "zip", "truncate"} & set(spec)
        assert changed, case
        if edits(case):
            assert nbformat.writes(build(case)) != plain, case


@pytest.mark.slow
@pytest.mark.timeout(BATCH_LIMIT)
@pytest.mark.parametrize("case", sorted(MANIFEST))
def test_each_case_scores_exactly_as_expected(graded, case: str) -> None:
    spec = MANIFEST[case]
    a = spec["assignment"]
    tests = points(a)
    zero = set(tests) if spec["zero"] == "all" else set(spec["zero"])
    want = {name: 0.0 if name in zero else p for name, p in tests.items()}
    got = scores(graded[a]["course"], a, student(case))
    if got is None:  # a submission that could not be read: recorded, and no points
        assert spec["zero"] == "all", (case, graded[a]["run"].stdout[-3000:])
        got = dict.fromkeys(tests, 0.0)
    assert got == want, f"{case} ({spec['kind']}): {spec['reason']}"


@pytest.mark.slow
@pytest.mark.timeout(BATCH_LIMIT)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_batch_finishes_and_audits_every_submission(graded, assignment: str) -> None:
    done = graded[assignment]["run"]
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    course = graded[assignment]["course"]
    for case in cases_of(assignment):
        record = course / "audit" / assignment / f"{student(case)}.json"
        assert record.is_file(), case
        json.loads(record.read_text())


@pytest.mark.slow
@pytest.mark.timeout(BATCH_LIMIT)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_side_effects(graded, assignment: str) -> None:
    before, after = graded[assignment]["before"], graded[assignment]["after"]
    for what in ("files", "gradebook", "home", "package"):
        changed = [k for k in before[what].keys() | after[what].keys()
                   if before[what].get(k) != after[what].get(k)]  # fmt: skip
        assert not changed, f"{what} changed while {assignment} was graded: {changed}"
    assert graded["left_behind"] == []  # no process of a case outlived its grading


@pytest.mark.slow
@pytest.mark.timeout(BATCH_LIMIT)
def test_feedback_of_a_print_flood_is_cut(graded) -> None:
    """64 MiB printed: the autograded cell keeps at most the jail's output limit, the page is
    small."""
    from cnncourse.grading.jail import Limits

    a, who = MANIFEST["print_flood"]["assignment"], student("print_flood")
    course = graded[a]["course"]
    nb = nbformat.read(course / "autograded" / who / a / f"{a}.ipynb", as_version=4)
    flood = nb.cells[find(nb, "sizes")]
    kept = sum(len(json.dumps(o)) for o in flood.outputs)
    assert 0 < kept <= Limits().output_bytes + 1024  # something is said, the flood is not kept
    pages = list((course / "feedback" / who / a).glob("*.html"))
    assert pages and all(p.stat().st_size < 4 * Limits().output_bytes + (1 << 20) for p in pages)


@pytest.mark.slow
@pytest.mark.timeout(BATCH_LIMIT)
@pytest.mark.parametrize("case", sorted(c for c, s in MANIFEST.items() if s.get("review")))
def test_what_the_guard_cannot_see_is_flagged_for_review(graded, case: str) -> None:
    """A known gap never passes silently: its audit record lists what to review."""
    a = MANIFEST[case]["assignment"]
    record = graded[a]["course"] / "audit" / a / f"{student(case)}.json"
    assert json.loads(record.read_text()).get("review"), case


def test_every_known_gap_says_why_and_is_reviewed() -> None:
    for case, spec in MANIFEST.items():
        if "known_gap" in spec:
            assert spec["known_gap"] and spec.get("review") is True, case


def test_adaptive_variant_takes_the_adaptive_path_on_a_visible_case() -> None:
    """Why adaptive_variant must score 0: some visible case of avg_pool2d has windows that tile
    the map with more than one output (adaptive pooling to 1x1 is mean() inside PyTorch)."""
    from cnncourse import grading

    tiling = []
    for case in grading.cases("avg_pool2d"):
        k, s = case["kernel_size"], case["stride"] or case["kernel_size"]
        h, w = case["x"].shape[2:]
        if s == k and ((h - k) // s + 1) * ((w - k) // s + 1) > 1:
            tiling.append(case)
    assert tiling
