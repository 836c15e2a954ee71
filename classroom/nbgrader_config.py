"""nbgrader settings every member of the class shares: the course and its exchange folder.

The exchange is the folder through which `release`, `fetch`, `submit` and `collect` pass the
notebooks: on a shared server or JupyterHub, one folder that everyone can write to (created once
by an administrator: ``mkdir -p /srv/nbgrader/exchange && chmod 1777 /srv/nbgrader/exchange``).
``CNNCOURSE_EXCHANGE`` names another folder (the tests use a temporary one). See book/classroom.md.
"""

import os

c = get_config()  # noqa: F821 (injected by traitlets)

c.CourseDirectory.course_id = "cnncourse"
c.Exchange.root = os.environ.get("CNNCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
