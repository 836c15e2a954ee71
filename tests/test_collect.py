"""`cnncourse.grading.collect`: every submission found, named, repaired from the release.

No nbgrader run here: a temporary course holds the repository's nbgrader_config.py and the committed
release (`exercises/`, which equals a fresh generation: tests/test_grading.py checks it), students'
notebooks are written as a student (or a learning platform) leaves them, and the collected
notebooks are checked cell by cell against the release and with nbgrader's own metadata validator.
The end-to-end grading of such submissions is in tests/test_hostile.py.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from pathlib import Path

import nbformat
import pytest

from cnncourse.grading.collect import collect, originals, release_notebooks, student_from_name
from cnncourse.grading.repair import MAX_BYTES, NotANotebook, repair
from conftest import ROOT

A = "ex01_convolution"
B = "ex03_pooling"


def release(assignment: str = A) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)


def ids(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]


def by_id(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    (found,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return found


def honest(assignment: str = A) -> nbformat.NotebookNode:
    """The release with every answer cell written as the solution writes it (markers removed)."""
    nb = release(assignment)
    solution = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    for c in solution.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution") and c.cell_type == "code":
            lines = [line for line in c.source.splitlines() if "### " not in line]
            by_id(nb, meta["grade_id"]).source = "\n".join(lines)
    return nb


def as_bytes(nb: nbformat.NotebookNode) -> bytes:
    return nbformat.writes(nb).encode()


@pytest.fixture
def course(tmp_path: Path) -> Path:
    (tmp_path / "nbgrader_config.py").write_bytes((ROOT / "nbgrader_config.py").read_bytes())
    for a in (A, B):
        folder = tmp_path / "exercises" / a
        folder.mkdir(parents=True)
        (folder / f"{a}.ipynb").write_bytes((ROOT / "exercises" / a / f"{a}.ipynb").read_bytes())
    return tmp_path


def hand_in(
    course: Path, student: str, data: bytes | nbformat.NotebookNode, name: str = ""
) -> Path:
    folder = course / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{A}.ipynb")
    path.write_bytes(data if isinstance(data, bytes) else as_bytes(data))
    return path


def collected(course: Path, student: str, assignment: str = A) -> nbformat.NotebookNode:
    path = course / "submitted" / student / assignment / f"{assignment}.ipynb"
    return nbformat.read(path, as_version=4)


def assert_gradable(nb: nbformat.NotebookNode, assignment: str = A) -> None:
    """What nbgrader needs: valid nbformat and nbgrader metadata, each release cell once, in order,
    with the release's metadata, locked cells as released, the set-up cell first."""
    from nbgrader.nbgraderformat import MetadataValidator

    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)
    ours = release(assignment)
    assert ids(nb) == ids(ours)
    for c in ours.cells:
        if "nbgrader" in c.metadata:
            got = by_id(nb, c.metadata.nbgrader["grade_id"])
            assert got.metadata.nbgrader == c.metadata.nbgrader and got.cell_type == c.cell_type
            assert not c.metadata.nbgrader["locked"] or got.source == c.source
    assert nb.cells[0].metadata.nbgrader["grade_id"] == ours.cells[0].metadata.nbgrader["grade_id"]


def test_an_honest_notebook_is_collected_unchanged(course: Path) -> None:
    nb = honest()
    hand_in(course, "alice", nb)
    record = collect(course, A)["alice"]
    assert record["status"] == "collected" and record["actions"] == []
    got = collected(course, "alice")
    assert_gradable(got)
    assert [c.source for c in got.cells] == [c.source for c in nb.cells]


@pytest.mark.parametrize(
    "name", ["Copy of ex01_convolution.ipynb", "ex01_convolution (1).ipynb", "mine.IPYNB"]
)
def test_one_notebook_under_any_name_is_graded_and_the_original_kept(course, name) -> None:
    path = hand_in(course, "bob", honest(), name)
    data = path.read_bytes()
    first = collect(course, A)["bob"]
    assert first["status"] == "collected" and first["source"] == name
    assert first["actions"] == [f"{name!r} graded as '{A}.ipynb'"]
    assert not path.exists() and (originals(course, A, "bob") / name).read_bytes() == data
    assert_gradable(collected(course, "bob"))
    files = {p: p.read_bytes() for p in course.rglob("*") if p.is_file()}
    assert collect(course, A)["bob"] == first  # a second run changes nothing, says the same
    assert {p: p.read_bytes() for p in course.rglob("*") if p.is_file()} == files


def test_of_several_notebooks_the_exercise_is_graded_and_the_others_kept(course) -> None:
    hand_in(course, "carol", honest(), "ex01_convolution-final.ipynb")
    hand_in(course, "carol", nbformat.v4.new_notebook(), "scratch.ipynb")  # no release cell
    record = collect(course, A)["carol"]
    assert record["source"] == "ex01_convolution-final.ipynb"
    assert (
        "another notebook, 'scratch.ipynb', not graded (kept in the originals)" in record["actions"]
    )
    assert (originals(course, A, "carol") / "scratch.ipynb").is_file()


def test_the_submission_folder_keeps_only_what_is_graded(course: Path) -> None:
    """nbgrader copies a submission's other files to autograded/ and feedback/ (back to the
    student): collect leaves only the notebook and nbgrader's timestamp there; the rest, byte for
    byte, goes to originals/<assignment>/<student>/, outside submitted/."""
    path = hand_in(course, "dora", honest(), "Copy of ex01_convolution.ipynb")
    folder = path.parent
    handed = {
        "timestamp.txt": b"2026-12-06 10:00:00.000000 UTC",
        "notes about alice.txt": b"alice helped me",
        "data/weights.pt": b"\x00\x01 not read",
        ".ipynb_checkpoints/ex01_convolution-checkpoint.ipynb": as_bytes(honest()),
    }
    for name, data in handed.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    record = collect(course, A)["dora"]
    assert record["status"] == "collected"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert files == [f"{A}.ipynb", "timestamp.txt"]
    keep = originals(course, A, "dora")
    assert keep.parent.parent == course / "originals"
    for name, data in handed.items():
        if name != "timestamp.txt":
            assert (keep / name).read_bytes() == data, name
    assert (keep / path.name).read_bytes() == as_bytes(honest())
    assert not list((course / "submitted").rglob("originals"))
    assert collect(course, A)["dora"] == record  # a second run says the same


@pytest.mark.parametrize(
    ("name", "folder", "student"),
    [
        ("alice_12345_ex01_convolution.ipynb", "", "alice"),
        ("smithbob_LATE_4321_9876_ex01_convolution-1.ipynb", "", "smithbob"),
        ("Zoë Souza_55_assignsubmission_file_Copy of ex01_convolution.ipynb", "", "Zoe_Souza"),
        ("ex01_convolution.ipynb", "dave_77_assignsubmission_file", "dave"),
        ("ex01_convolution.ipynb", "", None),
        ("Copy of notebook.ipynb", "", None),
        ("erin_ex01_convolution.ipynb", "", "erin"),
    ],
)
def test_student_ids_from_learning_platform_names(name, folder, student) -> None:
    assert student_from_name(name, A, folder) == student


def test_downloads_and_zip_archives_are_collected_per_student(course: Path) -> None:
    archive = course / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    (archive / "alice_12345_ex01_convolution.ipynb").write_bytes(as_bytes(honest()))
    (archive / "ex01_convolution.ipynb").write_bytes(as_bytes(release()))  # whose?
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("frank_1_ex01_convolution.ipynb", as_bytes(honest()))
        z.writestr("gina/ex01_convolution.ipynb", as_bytes(release()))
        z.writestr("../evil_ex01_convolution.ipynb", b"{}")  # outside the archive: skipped
        z.writestr("frank_1_notes.txt", b"not a notebook")
    (archive / "submissions.zip").write_bytes(buffer.getvalue())
    records = collect(course, A)
    assert {k for k, r in records.items() if r["status"] == "collected"} == {
        "alice",
        "frank",
        "gina",
    }
    unknown = "?downloaded/ex01_convolution/archive/ex01_convolution.ipynb"
    assert records[unknown]["status"] == "failed" and "no student id" in records[unknown]["reason"]
    assert records["gina"]["downloads"] == [
        "downloaded/ex01_convolution/archive/submissions.zip:gina/ex01_convolution.ipynb"
    ]
    for student in ("alice", "frank", "gina"):
        assert_gradable(collected(course, student))
    assert collect(course, A) == records  # downloads already collected are not collected again


def test_the_instructors_regexp_names_the_student(course: Path) -> None:
    archive = course / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    (archive / "12345-hank-ex01_convolution.ipynb").write_bytes(as_bytes(honest()))
    regexp = r"(?P<student_id>\d+)-.*\.ipynb$"
    assert collect(course, A, named_regexp=regexp)["12345"]["status"] == "collected"


def test_unknown_duplicate_and_edited_metadata_are_repaired_from_the_release(course) -> None:
    nb = honest()
    bonus = nbformat.v4.new_code_cell("print('bonus')")
    bonus.metadata["nbgrader"] = dict(grade=True, grade_id="bonus", points=100, locked=True,
                                      solution=False, schema_version=3)  # fmt: skip
    nb.cells.insert(5, bonus)
    copy_of_test = nbformat.from_dict(json.loads(json.dumps(by_id(nb, "test_size_a"))))
    copy_of_test.id = "my-copy"
    nb.cells.insert(3, copy_of_test)  # the same grade id, earlier in the notebook
    by_id(nb, "test_output_size").metadata.nbgrader["points"] = 50
    by_id(nb, "conv2d").metadata.nbgrader["locked"] = True
    by_id(nb, "test_conv2d_basic").source = "pass  # no test"
    del by_id(nb, "warm_up").metadata.nbgrader["schema_version"]
    hand_in(course, "ivan", nb)
    actions = collect(course, A)["ivan"]["actions"]
    assert "metadata of a cell naming no release cell ('bonus') removed" in actions
    assert "duplicate metadata of 'test_size_a' removed (one cell keeps it)" in actions
    assert "metadata of 'test_output_size' repaired from the release" in actions
    assert "metadata of 'conv2d' repaired from the release" in actions
    assert "locked cell 'test_conv2d_basic' restored from the release" in actions
    got = collected(course, "ivan")
    assert_gradable(got)
    sources = [c.source for c in got.cells]
    assert "print('bonus')" in sources  # the student's code stays, as a plain cell
    assert by_id(got, "conv2d").source == by_id(honest(), "conv2d").source


@pytest.mark.parametrize(
    "deleted",
    [
        ("conv2d", "test_conv2d_basic"),
        ("sizes",),
        ("setup",),
        ("warm_up", "test_warm_a", "test_warm_b"),
    ],
)
def test_deleted_answer_test_and_setup_cells_are_put_back(course, deleted) -> None:
    nb = honest()
    nb.cells = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in deleted
    ]
    hand_in(course, "judy", nb)
    record = collect(course, A)["judy"]
    got = collected(course, "judy")
    assert_gradable(got)
    for gid in deleted:
        assert any(
            re.search(rf"deleted .* '{gid}' put back from the release", a)
            for a in record["actions"]
        )
        assert by_id(got, gid).source == by_id(release(), gid).source  # an answer as the stub
    kept = [c.source for c in nb.cells]
    assert [c.source for c in got.cells if c.source in kept] == kept  # the rest in its order


def test_the_setup_cell_goes_back_to_the_top(course: Path) -> None:
    nb = honest()
    patch = nbformat.v4.new_code_cell("import builtins\nbuiltins.print = lambda *a: None")
    nb.cells.insert(0, patch)
    nb.cells.append(nb.cells.pop(1))  # the set-up cell last
    hand_in(course, "kim", nb)
    assert "set-up cell 'setup' moved back to the top" in collect(course, A)["kim"]["actions"]
    got = collected(course, "kim")
    assert_gradable(got)
    assert got.cells[1].source == patch.source


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"cells": [', "not valid JSON"),
        (b"\xff\xfe not text", "not valid JSON"),
        (b"[1, 2]", "JSON list, not a notebook"),
        (b'{"metadata": {}}', "without a list of cells"),
        (b'{"cells": [{"cell_type": "code", "source": 7}]}', "a cell's source is a int"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_a_file_that_is_not_a_notebook_is_a_recorded_failure(course, data, reason) -> None:
    hand_in(course, "leo", data)
    hand_in(course, "mia", honest())
    records = collect(course, A)
    assert records["leo"]["status"] == "failed" and reason in records["leo"]["reason"]
    assert records["mia"]["status"] == "collected"  # the batch goes on
    assert not (course / "submitted/leo" / A / f"{A}.ipynb").exists()
    assert (originals(course, A, "leo") / f"{A}.ipynb").read_bytes() == data
    assert collect(course, A)["leo"] == records["leo"]  # and stays recorded


def test_a_notebook_over_the_size_limit_is_not_read() -> None:
    with pytest.raises(NotANotebook, match="limit"):
        repair(b" " * (MAX_BYTES + 1), release())


def test_an_nbformat_3_notebook_and_list_sources_are_read(course: Path) -> None:
    nb = honest()
    v3 = nbformat.convert(copy.deepcopy(nb), 3)
    hand_in(course, "ned", nbformat.writes(v3, version=3).encode())
    record = collect(course, A)["ned"]
    assert record["status"] == "collected"
    got = collected(course, "ned")
    assert_gradable(got)
    assert by_id(got, "conv2d").source == by_id(nb, "conv2d").source


def test_an_unsafe_student_folder_name_is_a_recorded_failure(course: Path) -> None:
    hand_in(course, "o[1]", honest())
    assert collect(course, A)["o[1]"]["status"] == "failed"


def test_every_assignment_release_is_found(course: Path) -> None:
    for a in (A, B):
        (name,) = release_notebooks(course, a)
        assert name == a
    with pytest.raises(FileNotFoundError, match="generate_assignment"):
        release_notebooks(course, "ex99_missing")


def test_a_pooling_submission_missing_cells_is_repaired_too(course: Path) -> None:
    nb = honest(B)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in
                ("max_pool2d", "test_max_pool2d", "setup")]  # fmt: skip
    folder = course / "submitted" / "pia" / B
    folder.mkdir(parents=True)
    (folder / "Copy of ex03_pooling.ipynb").write_bytes(as_bytes(nb))
    assert collect(course, B)["pia"]["status"] == "collected"
    assert_gradable(collected(course, "pia", B), B)
