"""``cnncourse grade``: collect, jailed autograde, feedback, export and an audit record per student.

The instructor's one command, run in an nbgrader course folder (``nbgrader_config.py``, the source
or release folder, ``gradebook.db``)::

    cnncourse grade ASSIGNMENT [--course DIR] [--student ID ...] [--verify] [--no-jail]
                               [--timeout S]

1. **Collect**: `cnncourse.grading.collect.collect(course, assignment) -> {student: repairs}`
   (when that module is importable) puts each student's notebook, under any name, at
   ``submitted/<student>/<assignment>/<assignment>.ipynb`` and repairs its metadata and cells from
   the release; what it repaired goes into the audit record.
2. **Autograde**, each submission on its own: nbgrader's autograde with `JudgedExecute` in place
   of nbgrader's ``Execute``. The grader starts one judge per submission (outside any jail) and
   talks to it over a pipe; the student's kernel runs in a bubblewrap jail
   (`cnncourse.grading.jail`) and reaches that judge only through a unix socket bind-mounted
   into the jail (the environment variable ``CNNCOURSE_JUDGE_SOCKET`` names it). Before each
   cell the grader tells the judge, out of band, which cell runs (its ``grade_id``); the judge
   records per ``grade_id`` which checks passed. After the run, each test cell's outputs are set
   from that record (the checks its trusted source, from the gradebook, calls: every one must
   have passed, on hidden cases drawn fresh), so the points nbgrader stores never come from what
   the student's kernel printed.
3. **Feedback**: nbgrader's ``generate_feedback`` with this course's preprocessors, then every
   page sanitised (`cnncourse.grading.feedback.sanitise_html`).
4. **Export**: ``grades.csv`` in the course folder (nbgrader's CSV exporter).
5. **Audit**: ``audit/<assignment>/<student>.json`` per submission: the jail (or "none", with
   ``--no-jail``), wall time, peak memory, exit reason, the verdict source and points of every
   test cell, the collect repairs and the static review flags (`cnncourse.grading.review`).

Exit status 0 when the batch finished, even if some submissions failed: each failure is in its
audit record and in the summary printed. Status 2 (and nothing graded) when the jail cannot start
and ``--no-jail`` was not given: the message names what failed. ``--verify`` grades every
submission a second time (a fresh jail, fresh hidden cases) and reports each score that changed.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["JUDGE_SOCKET_ENV", "audit_path", "grade", "judged_execute_class", "trusted_checks"]

#: The environment variable that tells a kernel where the grader's judge listens.
JUDGE_SOCKET_ENV = "CNNCOURSE_JUDGE_SOCKET"
CHECKS = ("check_function", "check_answer", "check_module")  # the test cells' checks
# The judge: this interpreter, isolated (-I), told where this grader found cnncourse.
_JUDGE_CMD = [
    sys.executable,
    "-I",
    "-c",
    "import sys; sys.path[:0] = sys.argv[2:]; "
    "from cnncourse.grading.judge import main; main(['serve', '--socket', sys.argv[1]])",
]
_RUNS: dict[str, dict] = {}  # what JudgedExecute saw, by student (read by `_grade_one`)


def audit_path(course: Path, assignment: str, student: str) -> Path:
    """Where the audit record of one submission goes: ``audit/<assignment>/<student>.json``.

    A file collect could not attribute (``?<where it is>``) is named after its path, made safe.
    """
    name = re.sub(r"[^\w.@-]", "_", student) if student.startswith("?") else student
    return Path(course) / "audit" / assignment / f"{name}.json"


def trusted_checks(source: str) -> list[tuple[str, bool]]:
    """The checks a test cell's trusted source makes: (task, hidden) for each call, in order.

    A call of ``check_function``, ``check_answer`` or ``check_module`` (by name or as an
    attribute) whose first argument is a string: the task; ``hidden=True``: a hidden check.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        first = node.args[0] if node.args else None
        if name in CHECKS and isinstance(first, ast.Constant) and isinstance(first.value, str):
            hidden = any(
                k.arg == "hidden" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            found.append((first.value, hidden))
    return found


class _Judge:
    """The grader's judge for one submission: a process outside the jail, a socket into it."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "judge.sock"
        package = str(Path(__file__).resolve().parents[2])
        self.process = subprocess.Popen(
            [*_JUDGE_CMD, str(self.socket), package],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # out of reach of the signals sent to the kernel's group
        )
        ready = self.process.stdout.readline()
        if '"ready"' not in ready:
            self.close()
            raise RuntimeError(f"the grader's judge did not start ({ready.strip()!r})")

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def _error(ename: str, evalue: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


@functools.cache
def judged_execute_class() -> type:
    """`JudgedExecute`: nbgrader's Execute, with the jail, the judge's verdicts and capped output.

    Built on first use: nbgrader is slow to import and absent from students' runtimes.
    """
    from nbclient.exceptions import CellControlSignal, DeadKernelError
    from nbformat.v4 import new_output
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import Execute
    from traitlets import Bool, Integer

    from cnncourse.grading import jail, review

    class JudgedExecute(Execute):
        """Runs a submission in its jail; each test cell's outputs come from the judge's record.

        Before each cell the judge is told which cell runs. A kernel that dies, or a cell that
        does not end, costs that cell (the reason is recorded); the kernel is then started again,
        the cells that had run are run again (their checks not recorded), and grading goes on.
        """

        jailed = Bool(True, help="run the kernel in a bubblewrap jail").tag(config=True)
        output_bytes = Integer(jail.Limits().output_bytes, help="output kept per cell").tag(
            config=True
        )

        def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> tuple:
            info = resources["nbgrader"]
            started, self._lost, self._sizes, self._done = time.time(), {}, {}, []
            self._trusted = {}
            with Gradebook(info["db_url"]) as gb:
                for cell in nb.cells:
                    meta = cell.metadata.get("nbgrader", {})
                    if meta.get("grade_id"):
                        try:
                            source = gb.find_source_cell(
                                meta["grade_id"], info["notebook"], info["assignment"]
                            ).source
                        except MissingEntry:
                            continue
                        self._trusted[meta["grade_id"]] = source
            self._jail = jail.Jail(jail.Limits(output_bytes=self.output_bytes))
            self._km_class = jail.kernel_manager_class() if self.jailed else None
            self._judge, self._peak = _Judge(self._jail.ipc), 0
            self._jail.env[JUDGE_SOCKET_ENV] = str(self._judge.socket)
            os.environ[JUDGE_SOCKET_ENV] = str(self._judge.socket)  # --no-jail: inherited
            # the notebook alone in the working folder (the kernel does not read it: cells come
            # from here), so that a cell that looks for its file finds its own
            Path(self._jail.work, f"{info['notebook']}.ipynb").write_text(json.dumps(nb))
            try:
                nb, resources = super().preprocess(nb, resources, km)
                record = self._judge.ask({"op": "record"})["record"]
            finally:
                self._judge.close()
                self._jail.close()
                os.environ.pop(JUDGE_SOCKET_ENV, None)
            cells = self._apply(nb, record)
            _RUNS[info["student"]] = {
                "jail": "bubblewrap" if self.jailed else "none (--no-jail)",
                "seconds": round(time.time() - started, 2),
                "peak_memory_bytes": self._peak,
                "exit": "; ".join(f"cell {i}: {why}" for i, why in self._lost.items()) or "ok",
                "output_cut": sorted(i for i, n in self._sizes.items() if n > self.output_bytes),
                "cells": cells,
                "review": review.flags(nb, self._trusted)
                + [{"cell": v["grade_id"], "what": f} for v in cells for f in v.get("review", [])],
            }
            return nb, resources

        def create_kernel_manager(self) -> Any:
            if self._km_class is None:
                return super().create_kernel_manager()
            name = self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name")
            self.km = self._km_class(self._jail, kernel_name=name or "python3", config=self.config)
            return self.km

        def preprocess_cell(self, cell: Any, resources: Any, index: int) -> tuple:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell-{index}")
            self._judge.ask({"op": "cell", "grade_id": grade_id})
            try:
                cell, resources = super().preprocess_cell(cell, resources, index)
                if cell.cell_type == "code":
                    self._done.append(index)
            except (DeadKernelError, CellControlSignal, TimeoutError, RuntimeError) as error:
                why = "the kernel died" if isinstance(error, DeadKernelError) else None
                self._lost[index] = why or f"{type(error).__name__}: {str(error)[:200]}"
                cell.outputs.append(_error("KernelLost", self._lost[index]))
                self._judge.ask({"op": "cell", "grade_id": None})  # the replay is not recorded
                self._restart(resources)
            finally:
                self._judge.ask({"op": "cell", "grade_id": None})
            if hasattr(self.km, "record_peak") and self.km.has_kernel:
                self._peak = max(self._peak, self.km.record_peak())
            return cell, resources

        def _restart(self, resources: Any) -> None:
            """A fresh kernel (in a fresh process tree), with the cells that had run run again."""
            with contextlib.suppress(Exception):  # it is gone either way
                self._cleanup_kernel()
            self.km = self.create_kernel_manager()
            self.start_new_kernel(cwd=self.resources.get("metadata", {}).get("path"))
            self.start_new_kernel_client()
            for done in self._done:  # in a copy: outputs of the replay are not kept
                try:
                    self.execute_cell(copy.deepcopy(self.nb.cells[done]), done)
                except Exception:  # noqa: BLE001
                    break

        def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
            """Keep a cell's outputs while they fit `output_bytes`; then one note, then nothing."""
            size = len(json.dumps(msg.get("content", {})))
            used = self._sizes.get(cell_index, 0)
            self._sizes[cell_index] = used + size
            if used + size <= self.output_bytes:
                return super().output(outs, msg, display_id, cell_index)
            if used <= self.output_bytes:
                note = f"[output cut: more than {self.output_bytes} bytes in this cell]\n"
                outs.append(new_output("stream", name="stdout", text=note))
            return None

        def handle_comm_msg(self, outs: list, msg: dict, cell_index: int) -> None:
            """Widgets' messages are dropped: grading shows none, and they would pile up here."""

        def _apply(self, nb: Any, record: dict) -> list[dict]:
            """Set each test cell's outputs from the judge's record; return the verdicts."""
            verdicts = []
            for index, cell in enumerate(nb.cells):
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                    continue
                grade_id = meta["grade_id"]
                wanted = trusted_checks(self._trusted.get(grade_id, ""))
                if not wanted:  # a test without the judge's checks: the kernel's outcome decides
                    failed = any(o.output_type == "error" for o in cell.outputs)
                    verdicts.append(
                        {"grade_id": grade_id, "source": "kernel", "passed": not failed}
                    )
                    continue
                entries = record.get(grade_id, [])
                passed, messages, failure, flags = True, [], None, []
                for task, hidden in dict.fromkeys(wanted):
                    made = [e for e in entries if e["task"] == task and e["hidden"] == hidden]
                    bad = [e for e in made if not e["passed"]]
                    flags += [e["review"] for e in made if e.get("review")]
                    if made and not bad:
                        messages += [e["message"] for e in made[:1]]
                        continue
                    passed = False
                    if bad:
                        ename = "NotImplementedError" if bad[0].get("unanswered") else "CheckFailed"
                        failure = failure or (ename, bad[0]["message"])
                    else:
                        kind = "hidden" if hidden else "visible"
                        why = self._lost.get(index, "it was not called, or did not reach the judge")
                        if earlier := [i for i in self._lost if i < index]:
                            why += f" (the kernel was lost in cell {earlier[-1]})"
                        text = f"the {kind} check of {task} made no verdict: {why}"
                        failure = failure or ("CheckFailed", text)
                if passed:
                    cell.outputs = [new_output("stream", name="stdout", text="\n".join(messages))]
                else:
                    cell.outputs = [_error(*failure)]
                verdict = {"grade_id": grade_id, "source": "judge", "passed": passed}
                verdicts.append(verdict | ({"review": flags} if flags else {}))
            return verdicts

    return JudgedExecute


def _config(course: Path, timeout: int | None, jailed: bool) -> Any:
    """The course's nbgrader configuration, with `JudgedExecute` in place of nbgrader's Execute."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (course / "nbgrader_config.py").exists():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    config.Autograde.autograde_preprocessors = [
        judged_execute_class(),
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    config.JudgedExecute.jailed = jailed
    if timeout:
        config.Execute.timeout = timeout
    return config


def _api(course: Path, config: Any) -> Any:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _scores(course: Path, assignment: str, student: str) -> dict[str, float | None]:
    """The points nbgrader stored for each graded cell of the student's submission."""
    from nbgrader.api import Gradebook

    db = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db) as gb:
        scores = {}
        for nb in gb.find_submission(assignment, student).notebooks:
            scores |= {g.name: g.score for g in nb.grades}
        return scores


def _grade_one(
    course: Path, assignment: str, student: str, timeout: int | None, jailed: bool
) -> dict:
    """Autograde one submission (in this process, a worker of `grade`); return its audit record."""
    started = time.time()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    record: dict[str, Any] = {"student": student, "assignment": assignment}
    submitted = sorted((course / "submitted" / student / assignment).glob("*.ipynb"))
    record["ran"] = {
        "notebooks": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in submitted},
        "timeout": timeout,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        result = _api(course, _config(course, timeout, jailed)).autograde(assignment, student)
        record["status"] = "graded" if result["success"] else "failed"
        if not result["success"]:
            record["reason"] = (result.get("error") or result.get("log") or "")[-3000:]
    except Exception:  # noqa: BLE001 (recorded, and the batch goes on)
        record |= {"status": "failed", "reason": traceback.format_exc()[-3000:]}
    record |= _RUNS.get(student, {})
    if record["status"] == "graded":
        scores = _scores(course, assignment, student)
        for cell in record.get("cells", []):
            cell["points"] = scores.get(cell["grade_id"])
        record["score"] = sum(v for v in scores.values() if v is not None)
    record["wall_seconds"] = round(time.time() - started, 2)
    return record


def _students(course: Path, assignment: str) -> list[str]:
    return sorted(
        p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir()
    )


def _run_workers(
    course: Path, assignment: str, students: list[str], timeout: int | None, jailed: bool
) -> dict[str, dict]:
    """Grade `students` in worker processes, a few at a time; their audit records by student."""
    workers = max(1, min(len(students), os.cpu_count() or 1, 4))  # kernels wait a lot

    def one(student: str) -> dict:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "audit.json"
            cmd = [sys.executable, "-m", "cnncourse.grading.grader", "one", str(course)]
            cmd += [assignment, student, str(out), str(timeout or 0), "jail" if jailed else "none"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if out.exists():
                return json.loads(out.read_text())
            return {"student": student, "status": "failed", "reason": run.stderr[-3000:]}

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(students, pool.map(one, students), strict=True))


def _enrol(course: Path, students: list[str]) -> None:
    """Put `students` in the gradebook (no submission: grades.csv then shows them with 0)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            gb.update_or_create_student(student)


def _export(course: Path, config: Any, path: Path) -> None:
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        CsvExportPlugin(to=str(path), config=config).export(gb)


def grade(
    course: Path,
    assignment: str,
    students: list[str] | None = None,
    *,
    verify: bool = False,
    jailed: bool = True,
    timeout: int | None = None,
    say: Any = print,
) -> dict[str, dict]:
    """Collect, autograde, give feedback, export and audit one assignment; the audit records.

    Raises `cnncourse.grading.jail.JailError` (before anything is graded) when the jail cannot
    start and `jailed` is true.
    """
    from cnncourse.grading import feedback, jail

    course = Path(course).resolve()
    if jailed:
        jail.probe()
    else:
        say("warning: grading WITHOUT the jail (--no-jail): students' code runs with your rights")
    repairs: dict[str, dict] = {}
    try:
        from cnncourse.grading.collect import collect
    except ImportError:
        collect = None
    if collect is not None:
        try:
            repairs = collect(course, assignment)
        except Exception as error:  # noqa: BLE001 (grade what is in submitted/, and say so)
            say(f"warning: collect failed ({type(error).__name__}: {error}); grading submitted/")
            repairs = {"*": {"status": "failed", "reason": f"{type(error).__name__}: {error}"}}
    todo = students or _students(course, assignment)
    records = _run_workers(course, assignment, todo, timeout, jailed)
    if verify:  # a fresh jail and fresh hidden cases for everyone: which points change?
        again = _run_workers(course, assignment, todo, timeout, jailed)
        for student, record in again.items():
            before = {c["grade_id"]: c.get("points") for c in records[student].get("cells", [])}
            after = {c["grade_id"]: c.get("points") for c in record.get("cells", [])}
            changed = sorted(
                k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
            )
            first = records[student].get("score")
            record["verify"] = {"first": first, "second": record.get("score"), "changed": changed}
        records = again
    # what collect could not grade: a file with no student id ("?<where>"), a student whose only
    # notebook is unreadable. Each gets an audit record and a line in the summary; a known student
    # not graded goes into the gradebook, so that grades.csv shows them with 0, not without a row
    for key, repair in repairs.items():
        if key != "*" and key not in records and repair.get("status") == "failed":
            records[key] = {"student": key, "assignment": assignment, "status": "not graded"}
            records[key]["reason"] = repair.get("reason", "collect found no gradable notebook")
    _enrol(course, [k for k, r in records.items() if r["status"] != "graded" and k[0] != "?"])
    config = _config(course, timeout, jailed)
    api = _api(course, config)
    for student, record in records.items():
        record["collect"] = repairs.get(student, repairs.get("*"))
        if record["status"] == "graded":
            made = api.generate_feedback(assignment, student)
            pages = sorted((course / "feedback" / student / assignment).glob("*.html"))
            for page in pages:
                page.write_text(feedback.sanitise_html(page.read_text()))
            record["feedback"] = [str(p.relative_to(course)) for p in pages] if made else []
        path = audit_path(course, assignment, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
    _export(course, config, course / "grades.csv")
    for student, record in records.items():
        line = f"{student}: {record['status']}"
        if record["status"] == "not graded":
            line += f" ({record['reason'][:200]})"
        if record.get("score") is not None:
            line += f", {record['score']:g} points"
        if record.get("review"):
            line += f", REVIEW ({len(record['review'])} flags)"
        if (v := record.get("verify")) and (v["first"] != v["second"] or v["changed"]):
            line += f", CHANGED on regrading: {v['first']} -> {v['second']} ({v['changed']})"
        say(line)
    return records


def main(argv: list[str] | None = None) -> int:
    """``cnncourse grade`` (see `cnncourse.cli`); ``one``: a worker grading one submission."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "one":
        course, assignment, student, out, timeout, mode = args[1:]
        record = _grade_one(Path(course), assignment, student, int(timeout) or None, mode == "jail")
        Path(out).write_text(json.dumps(record))
        return 0
    parser = argparse.ArgumentParser(prog="cnncourse grade")
    add_arguments(parser)
    return run(parser.parse_args(args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment", help="the assignment's name, e.g. ex01_convolution")
    parser.add_argument("--course", type=Path, default=Path(), help="the course folder (.)")
    parser.add_argument("--student", nargs="+", help="grade only these students")
    parser.add_argument("--verify", action="store_true", help="grade twice, report changes")
    parser.add_argument("--no-jail", action="store_true", help="run without the jail (unsafe)")
    parser.add_argument("--timeout", type=int, help="seconds a cell may run")


def run(args: argparse.Namespace) -> int:
    from cnncourse.grading.jail import JailError

    try:
        grade(
            args.course,
            args.assignment,
            args.student,
            verify=args.verify,
            jailed=not args.no_jail,
            timeout=args.timeout,
        )
    except JailError as error:
        print(
            f"cnncourse grade: the jail cannot start, nothing was graded: {error}", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
