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
   of nbgrader's ``Execute``, in worker processes (``grader worker``, one per CPU, at most 4)
   that import nbgrader once and grade the students they are handed one after another. Each
   worker starts one judge (outside any jail: torch imported once) and talks to it over a pipe;
   each submission's kernel runs in a jail of its own (`cnncourse.grading.jail`) and reaches
   the judge only through a unix socket made for that submission in its jail's folder (the
   environment variable ``CNNCOURSE_JUDGE_SOCKET`` names it); when the submission ends, that
   socket and its connections are closed and the judge's state (cases sent, verdicts) emptied.
   Before each cell the grader tells the judge, out of band, which cell runs (its
   ``grade_id``); the judge records per ``grade_id`` which checks passed. After the run, each
   test cell's outputs are set from that record (the checks its trusted source, from the
   gradebook, calls: every one must have passed, on hidden cases drawn fresh), so the points
   nbgrader stores never come from what the student's kernel printed.
3. **Feedback**: nbgrader's ``generate_feedback`` with this course's preprocessors, one pass for
   the students graded, then every page sanitised (`cnncourse.grading.feedback.sanitise_html`).
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
import shutil
import subprocess
import sys
import tempfile
import threading
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
_STOPPED = ("KeyboardInterrupt", "CellTimeoutError")  # a cell stopped at its time limit
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
    """The grader's judge: a process outside every jail, reached from a jail through a socket.

    A worker starts one and keeps it for all its submissions (torch is imported once): `open`
    gives each submission a fresh socket in its jail's folder and a fresh state (no connection,
    case or verdict of an earlier submission is left), `release` closes that socket and empties
    the state again when the submission ends. The judge handles only plain data (JSON lines)
    from the kernel; its control requests come from this process, over its stdin.
    """

    def __init__(self) -> None:
        package = str(Path(__file__).resolve().parents[2])
        self.socket: Path | None = None
        self.process = subprocess.Popen(
            [*_JUDGE_CMD, "", package],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # out of reach of the signals sent to the kernel's group
        )
        self._ready = False

    def _wait_ready(self) -> None:
        if not self._ready:
            ready = self.process.stdout.readline()
            if '"ready"' not in ready:
                self.close()
                raise RuntimeError(f"the grader's judge did not start ({ready.strip()!r})")
            self._ready = True

    def open(self, folder: Path) -> Path:
        """A fresh state, listening on a socket in `folder` (a jail's ``ipc``); the socket."""
        self._wait_ready()
        self.socket = folder / "judge.sock"
        reply = self.ask({"op": "socket", "path": str(self.socket)})
        if "ready" not in reply:
            raise RuntimeError(f"the grader's judge cannot listen: {reply}")
        return self.socket

    def release(self) -> None:
        """Close the submission's socket and connections; forget its state."""
        self.ask({"op": "socket", "path": None})
        self.socket = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the grader's judge stopped")
        return json.loads(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


_JUDGES: list[_Judge] = []  # this process's judge, once started (`_judge`)


def _judge() -> _Judge:
    """This process's judge: the one started before, if it still runs, or a new one."""
    if not _JUDGES or not _JUDGES[0].alive():
        _JUDGES[:] = [_Judge()]
    return _JUDGES[0]


def _drop_judge() -> None:
    """End this process's judge (a failed submission must not leave a judge in a doubtful state)."""
    while _JUDGES:
        _JUDGES.pop().close()


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
            self._stopped = {}  # cells interrupted at the time limit (the kernel lived on)
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
            self._peak = 0
            try:
                self._judge = _judge()
                socket = self._judge.open(self._jail.ipc)
            except (RuntimeError, OSError):  # a judge that broke: a new one, once
                _drop_judge()
                self._judge = _judge()
                socket = self._judge.open(self._jail.ipc)
            self._jail.env[JUDGE_SOCKET_ENV] = str(socket)
            os.environ[JUDGE_SOCKET_ENV] = str(socket)  # --no-jail: inherited
            # the notebook alone in the working folder (the kernel does not read it: cells come
            # from here), so that a cell that looks for its file finds its own
            Path(self._jail.work, f"{info['notebook']}.ipynb").write_text(json.dumps(nb))
            try:
                nb, resources = super().preprocess(nb, resources, km)
                record = self._judge.ask({"op": "record"})["record"]
            finally:
                try:
                    self._judge.release()
                except (RuntimeError, OSError):
                    _drop_judge()
                self._jail.close()
                os.environ.pop(JUDGE_SOCKET_ENV, None)
            cells = self._apply(nb, record)
            _RUNS[info["student"]] = {
                "jail": "bubblewrap" if self.jailed else "none (--no-jail)",
                "seconds": round(time.time() - started, 2),
                "peak_memory_bytes": self._peak,
                "exit": "; ".join(
                    f"cell {i}: {why}" for i, why in sorted((self._lost | self._stopped).items())
                )
                or "ok",
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
                    if any(o.get("ename") in _STOPPED for o in cell.outputs):
                        self._stopped[index] = (
                            f"it was interrupted at the time limit ({self.timeout} s)"
                        )

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
                        why = self._lost.get(index) or self._stopped.get(index)
                        why = why or "it was not called, or did not reach the judge"
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
    here, path = str(Path(sys.executable).parent), os.environ.get("PATH", "")
    if here not in path.split(os.pathsep):
        os.environ["PATH"] = f"{here}{os.pathsep}{path}"
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
    record |= _RUNS.pop(student, {})
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


class _Worker:
    """A worker process (``grader worker``): it grades the submissions it is sent, one at a time.

    It imports nbgrader and starts its judge once, then reads a student id per line on its stdin
    and writes that submission's audit record, one JSON line, on its stdout (anything else it
    prints goes to its log). Each submission still gets its own jail and kernel.
    """

    def __init__(self, course: Path, assignment: str, timeout: int | None, jailed: bool) -> None:
        self.again = functools.partial(_Worker, course, assignment, timeout, jailed)  # a new one
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (the worker's stderr, while it lives)
        cmd = [sys.executable, "-m", "cnncourse.grading.grader", "worker", str(course)]
        cmd += [assignment, str(timeout or 0), "jail" if jailed else "none"]
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True
        )

    def grade(self, student: str) -> dict:
        """The audit record of `student`'s submission (a failure if the worker died on it)."""
        try:
            self.process.stdin.write(json.dumps(student) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:
            line = ""
        if line:
            return json.loads(line)
        self.close()
        self.log.seek(0)
        tail = self.log.read()[-3000:].decode(errors="replace")
        reason = f"the grading worker stopped (exit code {self.process.returncode}): {tail}"
        return {"student": student, "status": "failed", "reason": reason}

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # the worker ends (its judge with it)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _run_workers(workers: list[_Worker], students: list[str]) -> dict[str, dict]:
    """Grade `students` with `workers`, each taking the next student when it is free (a worker
    that died is replaced); their audit records."""
    todo, lock = iter(students), threading.Lock()

    def work(slot: int) -> dict[str, dict]:
        done = {}
        while True:
            with lock:
                student = next(todo, None)
            if student is None:
                return done
            if not workers[slot].alive():
                workers[slot] = workers[slot].again()
            done[student] = workers[slot].grade(student)

    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        found: dict[str, dict] = {}
        for part in pool.map(work, range(len(workers))):
            found |= part
    return {student: found[student] for student in students}


def _serve_worker(course: Path, assignment: str, timeout: int | None, jailed: bool) -> None:
    """``grader worker``: grade each student id read on stdin; each audit record on stdout."""
    out = os.fdopen(os.dup(1), "w")  # the records; fd 1 (prints, subprocesses) goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _judge()  # its torch import runs while nbgrader is imported here
    judged_execute_class()
    import nbgrader.apps  # noqa: F401 (what `_api` needs, imported before the first student)

    try:
        for line in sys.stdin:
            student = json.loads(line)
            record = _grade_one(course, assignment, student, timeout, jailed)
            out.write(json.dumps(record) + "\n")
            out.flush()
    finally:
        _drop_judge()


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


def _feedback(api: Any, course: Path, assignment: str, students: list[str]) -> None:
    """nbgrader's feedback of `students`, in one pass, every page sanitised."""
    from cnncourse.grading import feedback

    if not students:
        return
    for student in students:  # only what this run made: none left from an earlier run
        shutil.rmtree(course / "feedback" / student / assignment, ignore_errors=True)
    others = {p.parent.name for p in (course / "autograded").glob(f"*/{assignment}")}
    api.coursedir.student_id_exclude = ",".join(sorted(others - set(students)))
    try:
        api.generate_feedback(assignment)
    finally:
        api.coursedir.student_id_exclude = ""
    for student in students:
        for page in sorted((course / "feedback" / student / assignment).glob("*.html")):
            page.write_text(feedback.sanitise_html(page.read_text()))


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
    from cnncourse.grading import jail

    course = Path(course).resolve()
    # the workers start first (they import nbgrader and start their judges meanwhile), one per
    # CPU, at most 4 (kernels wait a lot) and not more than the students
    count = max(1, min(os.cpu_count() or 1, 4, len(students or _students(course, assignment)) or 4))
    workers = [_Worker(course, assignment, timeout, jailed) for _ in range(count)]
    try:
        if jailed:
            jail.probe()
        else:
            say("warning: grading WITHOUT the jail (--no-jail): your rights run students' code")
    except BaseException:
        for worker in workers:
            worker.close()
        raise
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
    try:
        records = _run_workers(workers, todo)
        if verify:  # a fresh jail and fresh hidden cases for everyone: which points change?
            again = _run_workers(workers, todo)
            for student, record in again.items():
                before = {c["grade_id"]: c.get("points") for c in records[student].get("cells", [])}
                after = {c["grade_id"]: c.get("points") for c in record.get("cells", [])}
                changed = sorted(
                    k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                )
                first = records[student].get("score")
                record["verify"] = {
                    "first": first,
                    "second": record.get("score"),
                    "changed": changed,
                }
            records = again
    finally:
        for worker in workers:
            worker.close()
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
    graded = [s for s, r in records.items() if r["status"] == "graded"]
    _feedback(api, course, assignment, graded)
    for student, record in records.items():
        record["collect"] = repairs.get(student, repairs.get("*"))
        if record["status"] == "graded":
            pages = sorted((course / "feedback" / student / assignment).glob("*.html"))
            record["feedback"] = [str(p.relative_to(course)) for p in pages]
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
    """``cnncourse grade`` (see `cnncourse.cli`); ``worker``: a worker grading submissions."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "worker":
        course, assignment, timeout, mode = args[1:]
        _serve_worker(Path(course), assignment, int(timeout) or None, mode == "jail")
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
