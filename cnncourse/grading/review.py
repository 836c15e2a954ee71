"""What a submission's code does that the checks cannot see: flags for the instructor to review.

The dispatch guard (`cnncourse.grading.kernel`) runs in the student's kernel, so code that turns
it off, or computes a "from scratch" result with another library, can hide from it. `flags` reads
the student's cells (every code cell whose source is not the trusted one of its ``grade_id``),
without running them, and lists each construct that can do so: ctypes, numpy or scipy
convolutions, patching `sys.modules`, `cnncourse.grading` or torch internals, `exec` / `eval`,
threads, processes, signal handlers and IPython's input transformers. A flag is not a verdict: it
goes into the audit record and the grade report as "review", so such a submission never passes
silently with full marks.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["flags"]

# module (or its prefix) -> why importing it is worth a look
MODULES = {
    "ctypes": "ctypes (calls C code, can patch memory)",
    "cffi": "cffi (calls C code)",
    "scipy.signal": "scipy.signal (convolutions)",
    "scipy.ndimage": "scipy.ndimage (convolutions, pooling)",
    "threading": "threads (code that runs while the checks run)",
    "_thread": "threads (code that runs while the checks run)",
    "multiprocessing": "processes",
    "subprocess": "processes",
    "signal": "signal handlers",
    "importlib": "imports by name",
    "builtins": "patching builtins",
    "gc": "the garbage collector (reaches any object)",
    "inspect": "frame inspection",
    "torch.library": "torch internals (operator registration)",
    "torch.utils._python_dispatch": "torch internals (dispatch modes)",
    "torch._C": "torch internals",
    "torch.overrides": "torch internals (function modes)",
    "cnncourse.grading.kernel": "the grading glue",
    "cnncourse.grading.judge": "the grading judge",
    "cnncourse.grading.tasks": "the grading tasks",
}
CALLS = {
    "exec": "exec",
    "eval": "eval",
    "compile": "compile",
    "__import__": "__import__",
    "setattr": "setattr (patching by name)",
    "convolve": "a library convolution (numpy.convolve, ...)",
    "correlate": "a library correlation (numpy.correlate, ...)",
    "convolve2d": "a library convolution (scipy)",
    "correlate2d": "a library correlation (scipy)",
    "as_strided": "strided views (a library sliding window)",
    "sliding_window_view": "numpy's sliding window",
}
ATTRIBUTES = {
    "_C": "torch internals (torch._C)",
    "ops": "torch.ops (operators by name)",
    "_python_dispatch": "torch internals (dispatch modes)",
    "settrace": "sys.settrace",
    "setprofile": "sys.setprofile",
    "_getframe": "frames",
    "f_back": "frames",
    "f_globals": "frames",
    "__code__": "code objects",
    "_judge": "the grading glue's judge",
    "_ask": "the grading glue's judge",
    "_call": "the grading glue",
    "__globals__": "function globals",
    "input_transformers_post": "IPython input transformers",
    "input_transformers_cleanup": "IPython input transformers",
    "ast_transformers": "IPython AST transformers",
    "events": "IPython events (code run around each cell)",
    "set_hook": "IPython hooks",
    "set_custom_exc": "IPython's exception handler",
    "showtraceback": "IPython's traceback display",
    "register_magic_function": "IPython magics",
}
# module.attribute, where the attribute's name alone is too common to flag
QUALIFIED = {
    ("sys", "modules"): "sys.modules",
    ("os", "fork"): "os.fork",
    ("os", "system"): "os.system",
    ("os", "kill"): "signals",
    ("os", "killpg"): "signals",
    ("resource", "setrlimit"): "resource limits",
}
PATCHED = ("grading", "kernel", "judge", "torch", "cnncourse", "sys", "builtins", "F", "nn")


def _python(source: str) -> str:
    """A cell's source as Python (IPython's magics and shell lines turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 (no IPython: plain Python only)
        return source


def _scan(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                why = next(
                    (w for m, w in MODULES.items() if (name + ".").startswith(m + ".")), None
                )
                if why and not (name == "cnncourse.grading" and isinstance(node, ast.ImportFrom)):
                    found.append((line, f"imports {name}: {why}"))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in CALLS:
                found.append((line, f"calls {name}: {CALLS[name]}"))
        elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            found.append((line, f"uses .{node.attr}: {ATTRIBUTES[node.attr]}"))
        elif isinstance(node, ast.Attribute) and (
            why := QUALIFIED.get((getattr(node.value, "id", ""), node.attr))
        ):
            found.append((line, f"uses {node.value.id}.{node.attr}: {why}"))
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                root = target
                while isinstance(root, ast.Attribute | ast.Subscript):
                    root = root.value
                if target is not root and getattr(root, "id", None) in PATCHED:
                    found.append((line, f"assigns to {ast.unparse(target)}: patching a module"))
    return found


def flags(nb: Any, trusted: dict[str, str]) -> list[dict]:
    """The constructs worth review in the student's code cells: [{cell, line, what}].

    `trusted`: the trusted source of each grade_id (the gradebook's); a cell whose source is its
    trusted source (a restored set-up or test cell) is the instructor's and is not read.
    """
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in trusted and cell.source == trusted[grade_id]:
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError as error:
            found.append({"cell": index, "line": error.lineno or 0, "what": "not valid Python"})
            continue
        found += [{"cell": index, "line": line, "what": what} for line, what in _scan(tree)]
    return found
