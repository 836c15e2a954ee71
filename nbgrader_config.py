"""nbgrader configuration of the course (used by instructors and by tests/test_grading.py).

The repository root is the course directory: solutions/ is nbgrader's "source" and exercises/ its
"release", so `nbgrader generate_assignment ex01_convolution` rewrites exercises/ from solutions/.
book/exercises.md walks through the whole workflow (release, collect, autograde, feedback, export);
book/grading.md the one command that does it all with a jail per student (`cnncourse grade`).
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from cnncourse.grading import feedback_preprocessor

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Autograding: a cell may run this many seconds; then the kernel is interrupted, the cell scores 0,
# and grading goes on with the next cell and the next student (an infinite loop cannot stall it).
c.Execute.timeout = 60
# A test cell deleted from a submission is put back (and run), so the original tests always grade.
# Edited test cells are restored by nbgrader anyway: their source is checked against the gradebook.
c.OverwriteCells.add_missing_cells = True

# Feedback must not show hidden tests, but nbgrader's default feedback is the whole autograded
# notebook, hidden tests and their tracebacks included. So: cut the tracebacks of cells with hidden
# tests to their last line, then remove the hidden lines (the preprocessor used for the release).
# Then clean every Markdown cell and output of scripts (SanitizeHTML: bleach's allow-list; no
# JavaScript output). `cnncourse grade` also re-writes each page without scripts (book/grading.md).
c.GenerateFeedback.preprocessors = [
    GetGrades,
    feedback_preprocessor(),  # HideHiddenTracebacks
    ClearHiddenTests,
    SanitizeHTML,
    CSSHTMLHeaderPreprocessor,
]
