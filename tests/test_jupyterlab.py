"""The course in JupyterLab, driven by headless Chromium as a student and an instructor use it.

- A **student** (the class set-up classroom/student: no instructor menus) opens a released
  exercise, runs it, answers one question, presses Validate and reads the result.
- An **instructor** (classroom/instructor) opens Formgrader, sees every assignment, autogrades a
  right and a wrong submission in the UI and reads 100% and 0; the grading view works with no
  internet (every request off the machine is refused).

Screenshots go to _build/lab-screenshots/ (not committed), the measured UI timings to
_build/lab-timings.json. Under CI=true the test never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from lab import BIN, INSTRUCTOR, STUDENT, lab_page, lab_server, new_course

from browser import find_chromium
from conftest import ROOT

pytestmark = [pytest.mark.timeout(900)]
SHOTS = ROOT / "_build" / "lab-screenshots"
TIMINGS: dict[str, float] = {}
ASSIGNMENT = "ex01_convolution"


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        why = "no Chromium found (install Debian's `chromium` package or set $CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"the JupyterLab test cannot run on CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        yield browser
        browser.close()
    SHOTS.parent.mkdir(exist_ok=True)
    (SHOTS.parent / "lab-timings.json").write_text(json.dumps(TIMINGS, indent=1))


def shot(page, name: str) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def nbgrader(course: Path, *args: str) -> str:
    """An nbgrader command in `course`, as the instructor types it (fails loudly)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [str(BIN / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def answer_source(release: Path) -> str:
    """The release's first answer cell with its first question (size_a) answered."""
    nb = nbformat.read(release, as_version=4)
    cell = next(c for c in nb.cells if "def size_a(" in c.source)
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()"
    head, tail = cell.source.split("def size_a(", 1)
    assert stub in tail, "the release's size_a stub changed: update the test"
    return head + "def size_a(" + tail.replace(stub, "    return n - k + 1", 1)


# --- the student ---------------------------------------------------------------------------------


def test_a_student_answers_one_question_and_validates(browser, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ASSIGNMENT).mkdir(parents=True)
    release = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shutil.copy(ROOT / "exercises" / ASSIGNMENT / release.name, release)
    source = answer_source(release)
    start = time.monotonic()
    exchange = {"CNNCOURSE_EXCHANGE": str(tmp_path / "exchange")}
    (tmp_path / "exchange").mkdir(mode=0o1777)
    with lab_server(home, STUDENT, exchange) as base:
        TIMINGS["student server start (s)"] = time.monotonic() - start
        with lab_page(browser, base, f"/lab/tree/{ASSIGNMENT}/{release.name}") as page:
            start = time.monotonic()
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)
            TIMINGS["notebook open, kernel idle (s)"] = time.monotonic() - start
            # no instructor tools in a student's JupyterLab
            page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
            tools = page.locator(".lm-Menu").last.inner_text()
            page.keyboard.press("Escape")
            assert "Formgrader" not in tools and "Course List" not in tools, tools
            assert page.locator("text=Create Assignment").count() == 0
            shot(page, "student-open")

            # answer size_a: select the answer cell's text and type the working
            cell = page.locator(".jp-CodeCell", has_text="def size_a(").first
            cell.locator(".cm-content").click()
            page.keyboard.press("Control+a")
            page.keyboard.insert_text(source)
            page.keyboard.press("Escape")

            # Run > Run All Cells: it stops at the first question still unanswered
            start = time.monotonic()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            test_a = page.locator(".jp-CodeCell", has_text='check_answer("ex01.size_a"').first
            test_b = page.locator(".jp-CodeCell", has_text='check_answer("ex01.size_b"').first
            test_b.locator(".jp-OutputArea-output").first.wait_for(timeout=180_000)
            TIMINGS["run all to the first stub (s)"] = time.monotonic() - start
            test_a.scroll_into_view_if_needed()
            shot(page, "student-run-all")
            said_a = test_a.locator(".jp-OutputArea").inner_text()
            said_b = test_b.locator(".jp-OutputArea").inner_text()
            assert "right" in said_a and "NotImplementedError" in said_b, (said_a, said_b)

            # Validate: every test at once, in a dialog
            start = time.monotonic()
            page.locator(".jp-Toolbar-item", has_text="Validate").first.click()
            dialog = page.locator(".jp-Dialog-content")
            dialog.wait_for(timeout=300_000)
            page.wait_for_function(
                "!/Validating/.test(document.querySelector('.jp-Dialog-content').innerText)",
                timeout=300_000,
            )
            TIMINGS["validate (s)"] = time.monotonic() - start
            text = dialog.inner_text()
            shot(page, "student-validate")
            page.keyboard.press("Escape")
            page.locator(".jp-Notebook").first.click()
            page.keyboard.press("Control+s")
            page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)")
    # saving in JupyterLab keeps the kernelspec the repository commits (no stray diff)
    saved = nbformat.read(release, as_version=4)
    committed = nbformat.read(ROOT / "exercises" / ASSIGNMENT / release.name, as_version=4)
    assert saved.metadata.kernelspec == committed.metadata.kernelspec
    assert "return n - k + 1" in saved.cells[[c.source for c in saved.cells].index(source)].source
    # What Validate says: the answered question is not among the failures, the rest are
    # reported as not answered yet, each with its sentence first (no internals' traceback)
    assert "size_a" not in text.replace("check_answer", ""), text
    assert "size_b" in text and "not answered yet" in text, text
    assert not re.search(r"cnncourse/grading/\w+\.py", text), text


# --- the instructor ------------------------------------------------------------------------------


def test_an_instructor_autogrades_in_formgrader_offline(browser, tmp_path: Path) -> None:
    course = new_course(tmp_path / "course")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    for student, first, last in [("alice", "Alice", "Right"), ("bob", "Bob", "Wrong")]:
        names = f"--first-name={first}", f"--last-name={last}"
        nbgrader(course, "db", "student", "add", student, *names)
    # alice hands in the solution; bob the release with a wrong answer to the first question
    folder = course / "submitted" / "alice" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder)
    folder = course / "submitted" / "bob" / ASSIGNMENT
    folder.mkdir(parents=True)
    nb = nbformat.read(course / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "def size_a(" in c.source)
    cell.source = cell.source.replace("raise NotImplementedError()", "return n - k", 1)
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")

    start = time.monotonic()
    exchange = {"CNNCOURSE_EXCHANGE": str(tmp_path / "exchange")}
    (tmp_path / "exchange").mkdir(mode=0o1777)
    with lab_server(course, INSTRUCTOR, exchange) as base:
        TIMINGS["instructor server start (s)"] = time.monotonic() - start
        with lab_page(browser, base, "/formgrader/manage_assignments") as page:
            page.wait_for_selector("tbody tr >> text=ex01_convolution", timeout=60_000)
            listed = page.locator("tbody").inner_text()
            shot(page, "instructor-assignments")
            log = (course.parent / "instructor-server.log").read_text()
            assert "not serializable" not in log, "nbgrader_config.py holds class objects"
            assert page.console_errors == [], page.console_errors
        for exercise in sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()):
            assert exercise in listed, f"Formgrader does not list {exercise}:\n{listed}"

        with lab_page(browser, base, f"/formgrader/manage_submissions/{ASSIGNMENT}") as page:
            page.wait_for_selector("tbody >> text=needs autograding", timeout=60_000)
            start = time.monotonic()
            for row in page.locator("tbody tr").all():
                row.locator("td").nth(5).locator("a").click()  # the Autograde column
            page.wait_for_function(
                "[...document.querySelectorAll('tbody tr')].every("
                "r => /graded/.test(r.innerText) && !/needs|wait/i.test(r.innerText))",
                timeout=600_000,
            )
            TIMINGS["autograde two submissions in the UI (s)"] = time.monotonic() - start
            shot(page, "instructor-autograded")

        with lab_page(browser, base, "/formgrader/manage_students") as page:
            page.wait_for_selector("tbody >> text=alice", timeout=60_000)
            rows = [r.inner_text() for r in page.locator("tbody tr").all()]
            rows = {row.split("\t")[1]: row for row in rows}  # student id -> the row's text
            shot(page, "instructor-students")
        points = nbformat.read(
            course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4
        )
        total = sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in points.cells)
        assert f"{total:g} / {total:g}" in rows["alice"], rows
        assert f"0 / {total:g}" in rows["bob"], rows

        # the grading view, with no internet: its script runs (the boxes show the autograded
        # scores), the formulas are typeset
        with lab_page(browser, base, f"/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}") as page:
            page.wait_for_selector("tbody a", timeout=60_000)
            start = time.monotonic()
            page.locator("tbody a").first.click()
            page.wait_for_selector("input.score", timeout=60_000)
            page.wait_for_function(
                "[...document.querySelectorAll('input.score')].every(i => i.placeholder !== '')",
                timeout=60_000,
            )
            page.wait_for_selector("mjx-container", timeout=60_000)
            TIMINGS["open the grading view (s)"] = time.monotonic() - start
            shot(page, "instructor-grading-view")
            assert page.console_errors == [], page.console_errors
