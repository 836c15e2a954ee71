"""nbgrader configuration of the course (used by instructors and by tests/test_grading.py).

The repository root is the course directory: solutions/ is nbgrader's "source" and exercises/ its
"release", so `nbgrader generate_assignment ex01_convolution` rewrites exercises/ from solutions/.
"""

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
