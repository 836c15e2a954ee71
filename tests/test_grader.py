"""`cnncourse grade` end to end: the real nbgrader and gradebook, a jail per student, the judge.

Two temporary courses are graded at the same time, as an instructor does (generate, submit,
``cnncourse grade``): ex01 with honest, untouched, forged and hostile submissions, and ex03
(solution and release) with ``--verify``. The scores are checked against the points of the
solution notebooks, and the side effects against the course's files: what a submission's code
does in its jail must not reach the gradebook, the course config, other students or the grader.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from test_grading import answer_points, cell, forger, nbgrader, notebook, points, solution_lines

from cnncourse.grading import grader, review
from conftest import ROOT

CNNCOURSE = Path(sys.executable).parent / "cnncourse"
MARKER = f"cnncourse-daemon-{uuid.uuid4().hex}"  # in the daemon's command line
FLOOD_LINES = 200_000


def transformer(solution, release):
    """Wrong answers, and an IPython input transformer that turns every test cell into `pass`."""
    code = (
        "get_ipython().input_transformers_post.append(\n"
        "    lambda lines: ['pass\\n'] if any('check_' in line for line in lines) else lines\n"
        ")\n"
    )
    cell(release, "sizes").source = code + cell(release, "sizes").source
    return release


def flood(solution, release):
    """Right answers, and a cell that prints without end (well, many lines)."""
    loop = f"\nfor i in range({FLOOD_LINES}):\n    print('flood', i)\n"
    cell(solution, "conv2d").source += loop
    return solution


def daemon(solution, release):
    """Right answers, and a daemon left behind in its own session."""
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.2)', "
        f"'{MARKER}'], start_new_session=True)\n"
    )
    cell(solution, "sizes").source = code + cell(solution, "sizes").source
    return solution


def snoop(solution, release, course: Path):
    """Right answers, and a cell that looks for the course's files and tries to change them."""
    code = f"""import os
for name in ("gradebook.db", "nbgrader_config.py", "solutions", "submitted"):
    print("SNOOP", name, os.path.exists(os.path.join({str(course)!r}, name)))
for name in ("gradebook.db", "nbgrader_config.py"):
    try:
        with open(os.path.join({str(course)!r}, name), "w") as f:
            f.write("overwritten")
        print("SNOOP wrote", name)
    except OSError:
        pass
print("SNOOP home", os.listdir(os.path.expanduser("~")), "cwd", os.listdir("."))
"""
    cell(solution, "sizes").source = code + cell(solution, "sizes").source
    return solution


def crash(solution, release):
    """Right answers, but the kernel exits at the end of the warm-up cell (``os._exit``)."""
    cell(solution, "warm_up").source += "\n\nimport os\n\nos._exit(3)\n"
    return solution


EX01 = "ex01_convolution"
EX03 = "ex03_pooling"
STUDENTS = {
    "solution": lambda solution, release, course: solution,
    "untouched": lambda solution, release, course: release,
    "forger": lambda solution, release, course: forger(solution, release),
    "transformer": lambda solution, release, course: transformer(solution, release),
    "flood": lambda solution, release, course: flood(solution, release),
    "daemon": lambda solution, release, course: daemon(solution, release),
    "snoop": snoop,
    "crash": lambda solution, release, course: crash(solution, release),
}
HANDED_IN = {"timestamp.txt": "2026-12-06 10:00:00.000000 UTC", "notes.txt": "with untouched"}
COURSES = {
    "class": (EX01, list(STUDENTS), []),
    "verified": (EX03, ["solution", "untouched"], ["--verify"]),
}


def grade_course(course: Path, assignment: str, students: list[str], options: list[str]) -> dict:
    """Generate, submit and run `cnncourse grade`; return its output and the audit records."""
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    nbgrader(course, "generate_assignment", assignment)
    for student in students:
        pair = notebook(course, "solutions", assignment), notebook(course, "exercises", assignment)
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(STUDENTS[student](*pair, course), folder / f"{assignment}.ipynb")
        if student == "solution":  # what JupyterHub's exchange adds, and a file of the student's
            for name, text in HANDED_IN.items():
                (folder / name).write_text(text)
    env = {**os.environ, "PATH": f"{CNNCOURSE.parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(CNNCOURSE), "grade", assignment, "--course", str(course), "--timeout", "60"]
    run = subprocess.run([*cmd, *options], env=env, capture_output=True, text=True)
    audits = {
        s: json.loads((course / "audit" / assignment / f"{s}.json").read_text())
        for s in students
        if (course / "audit" / assignment / f"{s}.json").exists()
    }
    return {"run": run, "audits": audits, "course": course}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("grade")
    with ThreadPoolExecutor(len(COURSES)) as pool:
        runs = {name: pool.submit(grade_course, base / name, *c) for name, c in COURSES.items()}
        return {name: run.result() for name, run in runs.items()}


def scores(course: dict, assignment: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['course'] / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(assignment)}


def cell_scores(course: dict, assignment: str, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['course'] / 'gradebook.db'}") as gb:
        grades = gb.find_submission_notebook(assignment, assignment, student).grades
        return {g.name: g.score for g in grades}


def test_trusted_checks_reads_the_calls_of_a_test_cell() -> None:
    source = (
        "from cnncourse.grading import check_answer\nimport cnncourse.grading as g\n"
        'check_answer("ex01.size_a", size_a)\n'
        'g.check_function("conv2d.basic", conv2d, hidden=True)\n'
        "print(\"check_answer('fake', f)\")\ncheck_answer(name, f)\n"
    )
    assert grader.trusted_checks(source) == [("ex01.size_a", False), ("conv2d.basic", True)]


def test_a_reused_judge_keeps_nothing_of_the_previous_submission(tmp_path: Path) -> None:
    """A worker's judge serves its submissions one after another: each gets its own socket and an
    empty state; the socket of the one before, its connections, cases and verdicts are gone."""
    import socket

    def ask(conn, request: dict) -> dict:
        conn.sendall((json.dumps(request) + "\n").encode())
        return json.loads(conn.makefile("r").readline())

    judge = grader._Judge()
    try:
        first, second = tmp_path / "a", tmp_path / "b"
        first.mkdir(), second.mkdir()
        path = judge.open(first)
        assert judge.ask({"op": "cell", "grade_id": "test_a"}) == {"cell": "test_a"}
        old = socket.socket(socket.AF_UNIX)
        old.connect(str(path))
        sent = ask(old, {"op": "cases", "task": "output_size", "hidden": True})
        token = sent["token"]
        wrong = [{"value": -1}] * len(sent["cases"])
        assert ask(old, {"op": "judge", "token": token, "results": wrong})["passed"] is False
        assert ask(old, {"op": "record"})["error"].startswith("ValueError")  # control: stdin only
        again = ask(old, {"op": "cases", "task": "output_size", "hidden": True})["token"]
        assert list(judge.ask({"op": "record"})["record"]) == ["test_a"]
        judge.release()
        assert old.recv(1) == b""  # the earlier submission's connection is closed
        assert not path.exists() or not _connects(path)
        path = judge.open(second)
        assert path.parent == second
        assert judge.ask({"op": "record"}) == {"record": {}}  # no verdict carried over
        new = socket.socket(socket.AF_UNIX)
        new.connect(str(path))
        late = ask(new, {"op": "judge", "token": again, "results": wrong})  # a case sent before
        assert late["error"].startswith("KeyError"), late
        fresh = ask(new, {"op": "cases", "task": "output_size", "hidden": True})
        assert fresh["token"] not in (token, again) and fresh["cases"] != sent["cases"]
        assert judge.ask({"op": "record"}) == {"record": {}}  # no cell set: nothing recorded
        new.close()
    finally:
        judge.close()


def _connects(path: Path) -> bool:
    import socket

    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def test_review_flags_what_can_hide_from_the_guard() -> None:
    nb = nbformat.v4.new_notebook()
    code = [
        "import ctypes",
        "import numpy as np\nnp.convolve(a, b)",
        "import sys\nsys.modules['torch'] = None",
        "from cnncourse import grading\ngrading.check_function = print",
        "exec('x = 1')",
        "import threading",
        "import signal\nsignal.signal(2, signal.SIG_IGN)",
        "get_ipython().input_transformers_post.append(f)",
        "torch._C._set_grad_enabled(False)",
        "%time x = 1\ndef conv2d(x, weight):\n    return x @ weight",  # honest, with a magic
        "for m in model.modules():\n    print(m)",  # honest: a module's .modules()
    ]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in code]
    found = review.flags(nb, {})
    flagged = {f["cell"] for f in found}
    assert flagged == set(range(len(code) - 2)), found
    trusted = {"setup": "import ctypes"}  # the instructor's own cell is not read
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "setup"}
    assert 0 not in {f["cell"] for f in review.flags(nb, trusted)}


def test_without_bwrap_grading_refuses_and_grades_nothing(tmp_path: Path) -> None:
    (tmp_path / "submitted" / "alice" / EX01).mkdir(parents=True)
    env = {**os.environ, "PATH": str(CNNCOURSE.parent)}  # the environment's bin: no bwrap there
    run = subprocess.run(
        [str(CNNCOURSE), "grade", EX01, "--course", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    assert "bubblewrap" in run.stderr and "--no-jail" in run.stderr
    assert not (tmp_path / "autograded").exists() and not (tmp_path / "audit").exists()


@pytest.mark.slow
def test_the_batch_finishes_with_an_audit_per_student(graded) -> None:
    for name, (_, students, _) in COURSES.items():
        course = graded[name]
        assert course["run"].returncode == 0, course["run"].stderr[-3000:]
        assert set(course["audits"]) == set(students)
        for student, audit in course["audits"].items():
            assert audit["status"] == "graded" and audit["jail"] == "bubblewrap", audit
            assert audit["cells"] and all(c["source"] == "judge" for c in audit["cells"])
            assert audit["peak_memory_bytes"] > 0 and audit["seconds"] > 0
            assert f"{student}: graded" in course["run"].stdout
        csv = (course["course"] / "grades.csv").read_text().splitlines()
        assert len(csv) == 1 + len(students)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COURSES))
def test_honest_work_scores_full_marks_and_the_release_zero(graded, name: str) -> None:
    assignment = COURSES[name][0]
    got = scores(graded[name], assignment)
    assert got["solution"] == points(assignment), cell_scores(graded[name], assignment, "solution")
    assert got["untouched"] == 0


@pytest.mark.slow
def test_forged_test_cells_score_zero(graded) -> None:
    """Checks replaced by no-ops, or test cells turned into `pass`: no verdict, no points."""
    got = scores(graded["class"], EX01)
    assert got["forger"] == 0 and got["transformer"] == 0
    nb = notebook(graded["class"]["course"], "autograded/forger", EX01)
    assert "made no verdict" in str(cell(nb, "test_size_a").outputs)
    flags = graded["class"]["audits"]["transformer"]["review"]
    assert any("input_transformers_post" in f["what"] for f in flags), flags


@pytest.mark.slow
def test_the_course_is_out_of_the_students_reach(graded) -> None:
    course = graded["class"]["course"]
    assert scores(graded["class"], EX01)["snoop"] == points(EX01)
    nb = notebook(course, "autograded/snoop", EX01)
    out = str(cell(nb, "sizes").outputs)
    for name in ("gradebook.db", "nbgrader_config.py", "solutions", "submitted"):
        assert f"SNOOP {name} False" in out
    assert "SNOOP wrote" not in out and f"'{EX01}.ipynb'" in out  # its notebook, nothing else
    assert (course / "nbgrader_config.py").read_bytes() == (
        ROOT / "nbgrader_config.py"
    ).read_bytes()


@pytest.mark.slow
def test_a_daemon_ends_with_its_jail(graded) -> None:
    assert scores(graded["class"], EX01)["daemon"] == points(EX01)
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                alive += [entry.name] * (MARKER in (entry / "cmdline").read_text())
            except OSError:
                continue
    assert not alive


@pytest.mark.slow
def test_a_print_flood_is_cut_and_the_rest_graded(graded) -> None:
    from cnncourse.grading.jail import Limits

    assert scores(graded["class"], EX01)["flood"] == points(EX01)
    nb = notebook(graded["class"]["course"], "autograded/flood", EX01)
    outputs = cell(nb, "conv2d").outputs
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get(
        "grade_id") == "conv2d")  # fmt: skip
    assert graded["class"]["audits"]["flood"]["output_cut"] == [index]  # cut while received
    assert len(json.dumps(outputs)) < Limits().output_bytes
    assert f"flood {FLOOD_LINES - 1}" not in str(outputs)


@pytest.mark.slow
def test_a_kernel_that_exits_costs_only_what_needs_its_cell(graded) -> None:
    got = cell_scores(graded["class"], EX01, "crash")
    warm = [n for n in answer_points(EX01) if n.startswith("warm")]
    assert all(got[f"test_{n}"] == 0 for n in warm)
    lost = sum(answer_points(EX01)[n] for n in warm)
    assert sum(got.values()) == points(EX01) - lost  # the cells after it: graded as usual
    assert "cell" in graded["class"]["audits"]["crash"]["exit"]


@pytest.mark.slow
def test_verify_regrades_and_reports_no_change_for_honest_work(graded) -> None:
    course = graded["verified"]
    for student in ("solution", "untouched"):
        v = course["audits"][student]["verify"]
        assert v["first"] == v["second"] and v["changed"] == []
    assert "CHANGED" not in course["run"].stdout


@pytest.mark.slow
def test_feedback_is_safe_to_return(graded) -> None:
    course = graded["class"]["course"]
    secret = set(solution_lines(ROOT / "solutions" / EX01 / f"{EX01}.ipynb"))
    for student in STUDENTS:
        page = (course / "feedback" / student / EX01 / f"{EX01}.html").read_text()
        assert "<script" not in page.lower() and "BEGIN HIDDEN TESTS" not in page
        assert "hidden=True" not in page
        others = set(STUDENTS) - {student}
        assert not [o for o in others if re.search(rf"autograded/{o}\b", page)]
    untouched = (course / "feedback" / "untouched" / EX01 / f"{EX01}.html").read_text()
    assert not [line for line in secret if line in untouched]


@pytest.mark.slow
def test_a_student_gets_back_the_feedback_page_and_nothing_else(graded) -> None:
    """nbgrader copies a submission's other files into feedback/: the student's own files (which
    may name others) are kept in originals/, outside submitted/, and never handed back."""
    for name, (assignment, students, _) in COURSES.items():
        course = graded[name]["course"]
        for student in students:
            got = sorted(
                str(p.relative_to(course / "feedback" / student))
                for p in (course / "feedback" / student).rglob("*")
                if p.is_file()
            )
            stamp = [f"{assignment}/timestamp.txt"] if student == "solution" else []
            assert got == sorted([f"{assignment}/{assignment}.html", *stamp]), (student, got)
        kept = course / "originals" / assignment / "solution" / "notes.txt"
        assert kept.read_text() == HANDED_IN["notes.txt"]
        assert not [p for p in course.rglob("notes.txt") if p != kept]


def test_what_collect_cannot_grade_gets_an_audit_and_a_zero_row(tmp_path: Path) -> None:
    """A download with no student id, and a student whose notebook is not a notebook: neither is
    dropped silently. Each has an audit record and a line in the summary; the student has a row
    with 0 points in grades.csv."""
    course = tmp_path / "course"
    course.mkdir()
    config = (ROOT / "nbgrader_config.py").read_text()
    regexp = r"'.*/(?P<student_id>[a-z]+)_(?P<file_id>.*)'"  # ids in lower case, then "_"
    config += f"\nc.FileNameCollectorPlugin.named_regexp = r{regexp}\n"
    (course / "nbgrader_config.py").write_text(config)
    shutil.copytree(ROOT / "solutions" / EX01, course / "solutions" / EX01)
    nbgrader(course, "generate_assignment", EX01)
    archive = course / "downloaded" / EX01 / "archive"
    archive.mkdir(parents=True)
    shutil.copy(course / "exercises" / EX01 / f"{EX01}.ipynb", archive / "Mystery Copy.ipynb")
    (course / "submitted" / "carol" / EX01).mkdir(parents=True)
    (course / "submitted" / "carol" / EX01 / f"{EX01}.ipynb").write_text("{not a notebook")
    env = {**os.environ, "PATH": f"{CNNCOURSE.parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [str(CNNCOURSE), "grade", EX01, "--course", str(course)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    audits = {p.name: json.loads(p.read_text()) for p in (course / "audit" / EX01).glob("*.json")}
    mystery = [a for name, a in audits.items() if "Mystery" in name]
    assert len(mystery) == 1 and mystery[0]["status"] == "not graded", audits
    assert "no student id" in mystery[0]["reason"]
    assert audits["carol.json"]["status"] in ("failed", "not graded"), audits["carol.json"]
    assert "Mystery" in run.stdout and "carol:" in run.stdout, run.stdout
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert "carol" in rows and float(rows["carol"]["score"]) == 0, rows


# --- the feedback sanitiser (nh3), on pages written as nbconvert writes them ---------------------

PNG = "data:image/png;base64,iVBORw0KGgo="


def page(body: str, head: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<title>ex01</title>\n"
        f'<style type="text/css">.score {{ color: black; }}</style>\n{head}</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def parsed(html: str) -> list[tuple[str, dict]]:
    """Every element of `html` with its attributes, as Python's HTML parser reads them."""
    from html.parser import HTMLParser

    found = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

        handle_startendtag = handle_starttag

    Elements().feed(html)
    return found


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//x.example/a.js></SCRIPT>",
        '<img src="x" onerror="alert(1)">',
        '<p onclick="alert(1)" onmouseover="alert(2)">text</p>',
        '<a href="javascript:alert(1)">link</a>',
        '<a href=" JaVaScRiPt:alert(1)">link</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD4=">link</a>',
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
        '<iframe src="https://x.example"></iframe>',
        '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
        '<object data="x.swf"></object><embed src="x.swf">',
        '<form action="https://x.example"><input name="q"><button formaction="javascript:x">'
        "go</button></form>",
        '<svg><script>alert(1)</script><a xlink:href="javascript:alert(1)">x</a></svg>',
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        '<base href="https://x.example/"><link rel="stylesheet" href="https://x.example/a.css">',
        '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
        '<span style="background-image: url(javascript:alert(1))">x</span>',
        '<div style="width: expression(alert(1))">x</div>',
        "<!--<script>alert(1)</script>--><p>text</p>",
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
        '<template><script>alert(1)</script></template><frameset onload="alert(1)">',
    ],
)
def test_the_sanitiser_drops_every_way_to_run_a_script(hostile: str) -> None:
    from cnncourse.grading.feedback import sanitise_html

    out = sanitise_html(page(hostile))
    for tag, attrs in parsed(out):
        assert tag not in {"script", "iframe", "object", "embed", "form", "input", "button"}, out
        assert tag not in {"base", "link", "svg", "math", "frameset", "template", "noscript"}, out
        assert not [name for name in attrs if name.startswith("on") or name == "srcdoc"], out
        for value in attrs.values():
            plain = "".join((value or "").split()).lower()
            assert not plain.startswith(("javascript:", "vbscript:")), out
            assert not plain.startswith("data:") or plain.startswith("data:image/png;"), out
            assert "url(" not in plain and "expression(" not in plain, out
    assert "<script" not in out.lower()  # as an element; escaped text may stay
    assert sanitise_html(out) == out  # a clean page is a fixed point


def test_the_sanitiser_keeps_what_a_feedback_page_shows() -> None:
    from cnncourse.grading.feedback import sanitise_html

    body = (
        '<a name="top"></a><div class="container" id="toc"><h4>ex01 (Score: 1.0 / 2.0)</h4>'
        '<ol><li><a href="#test_size_a">Test cell</a></li></ol></div>'
        "<table><thead><tr><th>k</th><th>MACs</th></tr></thead>"
        '<tbody><tr><td colspan="2">9</td></tr></tbody></table>'
        '<pre><span class="ansi-red-fg">CheckFailed</span>: size_a(n=7) returned 5</pre>'
        '<span style="color: rgb(0,135,0)">def</span> <code>conv2d(x, w)</code>'
        "<p>The output has $H' = \\frac{H + 2p - k}{s} + 1$ rows &amp; $$C_{out}$$ maps</p>"
        f'<img src="{PNG}" alt="plot"><img src="data:image/jpeg;base64,/9j/4A==">'
        '<img src="data:image/gif;base64,R0lGODlh"><a href="https://pytorch.org/docs">docs</a>'
    )
    out = sanitise_html(page(body))
    elements = parsed(out)
    tags = [t for t, _ in elements]
    for tag in ("title", "style", "table", "thead", "th", "td", "pre", "code", "ol", "h4"):
        assert tag in tags, (tag, out)
    assert ".score { color: black; }" in out  # the template's CSS, whole
    assert ("div", {"class": "container", "id": "toc"}) in elements
    assert ("span", {"class": "ansi-red-fg"}) in elements
    assert ("td", {"colspan": "2"}) in elements
    assert [a["src"][:15] for t, a in elements if t == "img"] == [
        PNG[:15],
        "data:image/jpeg",
        "data:image/gif;",
    ]
    assert any(t == "a" and a.get("href") == "#test_size_a" for t, a in elements)
    assert any(t == "a" and a.get("href") == "https://pytorch.org/docs" for t, a in elements)
    assert any(t == "span" and "color" in a.get("style", "") for t, a in elements)
    assert "$H' = \\frac{H + 2p - k}{s} + 1$" in out and "$$C_{out}$$" in out  # MathJax's text
    assert "returned 5" in out and "&amp;" in out
    assert out.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in out
