"""nbgrader configuration of the course (used by instructors and by tests/test_grading.py).

Preprocessors are named by string, never as class objects: Formgrader shows this configuration in
its "Current configuration" panel, which needs it serialisable. The course's own preprocessors are
in cnncourse/grading/nbgrader_plugins.py.

The repository root is the course directory: solutions/ is nbgrader's "source" and exercises/ its
"release", so `nbgrader generate_assignment ex01_convolution` rewrites exercises/ from solutions/.
book/exercises.md walks through the whole workflow (release, collect, autograde, feedback, export);
book/grading.md the one command that does it all with a jail per student (`cnncourse grade`).
"""

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Autograding: a cell may run this many seconds; then the kernel is interrupted, the cell scores 0,
# and grading goes on with the next cell and the next student (an infinite loop cannot stall it).
c.Execute.timeout = 60
# nbgrader fails a notebook whose output arrives more than `iopub_timeout` seconds after its cell
# ends (4 by default): on a busy shared server that fails honest work, so wait longer.
c.Execute.iopub_timeout = 30
c.Execute.startup_timeout = 180
# A test cell deleted from a submission is put back (and run), so the original tests always grade.
# Edited test cells are restored from the gradebook; an unedited released test cell (which lacks
# its hidden tests) is restored without nbgrader's false "checksum has changed" warning.
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "cnncourse.grading.nbgrader_plugins.RestoreLockedCells",  # nbgrader's OverwriteCells, quiet
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Feedback must not show hidden tests, but nbgrader's default feedback is the whole autograded
# notebook, hidden tests and their tracebacks included. So: cut the tracebacks of cells with hidden
# tests to their last line, then remove the hidden lines (the preprocessor used for the release).
# Then clean every Markdown cell and output of scripts (SanitizeHTML: bleach's allow-list; no
# JavaScript output). `cnncourse grade` also re-writes each page without scripts (book/grading.md).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "cnncourse.grading.nbgrader_plugins.HideHiddenTracebacks",
    "cnncourse.grading.nbgrader_plugins.ClearHiddenTests",
    "nbconvert.preprocessors.sanitize.SanitizeHTML",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
