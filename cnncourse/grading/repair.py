"""Repair a student's notebook on the release's nbgrader cells (used by `collect`).

`repair(data, release)` reads the bytes a student handed in (nbformat 3 or 4, a source as a string
or a list of lines) and rebuilds a clean nbformat 4.5 notebook on the release notebook's nbgrader
cells, matched by ``grade_id`` (see `cnncourse.grading.collect` for the rules). It raises
`NotANotebook` with the reason when the bytes are not a notebook.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import nbformat

__all__ = ["MAX_BYTES", "NotANotebook", "repair", "grade_ids"]

MAX_BYTES = 64 * 2**20  # a notebook larger than this is refused (a zip member too), not read
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat 4.5's cell id pattern


class NotANotebook(ValueError):
    """The file cannot be read as a notebook (the reason is the message)."""


def _grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) else None


# --- reading what a student handed in -----------------------------------------------------------


def _text(source: Any) -> str:
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotANotebook(f"a cell's source is a {type(source).__name__}, not text")


def _cells(data: bytes) -> list[dict]:
    """The cells of a notebook file as plain dicts: type, source, metadata (nbformat 3 or 4)."""
    if len(data) > MAX_BYTES:
        raise NotANotebook(f"{len(data)} bytes: larger than the {MAX_BYTES}-byte limit")
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise NotANotebook(f"not valid JSON ({type(error).__name__}: {error})"[:300]) from None
    if not isinstance(raw, dict):
        raise NotANotebook(f"JSON {type(raw).__name__}, not a notebook")
    if raw.get("nbformat") == 3 or "worksheets" in raw:
        try:
            raw = nbformat.convert(nbformat.from_dict(raw), 4)
        except Exception as error:
            raise NotANotebook(
                f"an nbformat 3 notebook that cannot be converted: {error}"
            ) from None
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise NotANotebook("JSON without a list of cells, not a notebook")
    out = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue  # not a cell nbformat knows: nothing of it could run
        meta = cell.get("metadata")
        out.append(
            {
                "cell_type": cell["cell_type"],
                "source": _text(cell.get("source", "")),
                "metadata": meta if isinstance(meta, dict) else {},
                "id": cell.get("id"),
            }
        )
    return out


# --- the repair -----------------------------------------------------------------------------------


def _checked(meta: dict) -> dict:
    """The nbgrader keys that decide grading, to compare a student's metadata with the release's."""
    keys = ("grade", "solution", "locked", "points", "task", "cell_type")
    return {k: meta.get(k) for k in keys}


def _owners(cells: list[dict], order: list[str]) -> dict[str, int]:
    """Which cell keeps each grade id named more than once: in release order where it can.

    Going through the release's ids in order, a duplicated id goes to its first cell after the
    cell of the id before it (so a test cell copied above its answer does not test too early),
    else to its last cell.
    """
    where: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        if isinstance(gid := _grade_id(cell), str) and gid in order:
            where.setdefault(gid, []).append(index)
    owner, last = {}, -1
    for gid in order:
        if gid in where:
            after = [i for i in where[gid] if i > last]
            owner[gid] = after[0] if after else where[gid][-1]
            last = owner[gid]
    return owner


def repair(data: bytes, release: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook in `data` rebuilt on `release`'s nbgrader cells; and what was done, in words.

    Raises `NotANotebook` when `data` is not a notebook.
    """
    cells, actions = _cells(data), []
    wanted = {_grade_id(c): c for c in release.cells if _grade_id(c)}
    order = [_grade_id(c) for c in release.cells if _grade_id(c)]
    owner = _owners(cells, order)
    kept: list[dict] = []
    claimed: set[str] = set()
    for index, cell in enumerate(cells):
        meta = cell["metadata"].get("nbgrader")
        new = {"cell_type": cell["cell_type"], "source": cell["source"], "id": cell["id"]}
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if meta is not None and (not isinstance(gid, str) or gid not in wanted):
            actions.append(f"metadata of a cell naming no release cell ({gid!r}) removed")
        elif meta is not None and owner[gid] != index:
            actions.append(f"duplicate metadata of {gid!r} removed (one cell keeps it)")
        elif meta is not None:
            claimed.add(gid)
            ref = wanted[gid]
            ref_meta = dict(ref.metadata.nbgrader)
            if _checked(meta) != _checked(ref_meta) or meta.get("grade_id") != gid:
                actions.append(f"metadata of {gid!r} repaired from the release")
            if cell["cell_type"] != ref.cell_type:
                actions.append(f"cell type of {gid!r} restored ({ref.cell_type})")
            if ref_meta.get("locked") and cell["source"] != ref.source:
                actions.append(f"locked cell {gid!r} restored from the release")
                new["source"] = ref.source
            new.update(cell_type=ref.cell_type, nbgrader=copy.deepcopy(ref_meta), id=ref.get("id"))
        kept.append(new)
    for index, gid in enumerate(order):  # put back what is missing, after its release neighbour
        if gid in claimed:
            continue
        ref = wanted[gid]
        ref_meta = ref.metadata.nbgrader
        restored = {
            "cell_type": ref.cell_type,
            "source": ref.source,
            "nbgrader": copy.deepcopy(dict(ref_meta)),
            "id": ref.get("id"),
        }
        before = [g for g in order[:index] if g in claimed]
        at = 0
        if before:
            at = 1 + next(
                i for i, c in enumerate(kept) if c.get("nbgrader", {}).get("grade_id") == before[-1]
            )
        kept.insert(at, restored)
        claimed.add(gid)
        what = (
            "answer cell (as the release's stub)"
            if ref_meta.get("solution")
            else "test cell"
            if ref_meta.get("grade")
            else "locked cell"
        )
        actions.append(f"deleted {what} {gid!r} put back from the release")
    first = _grade_id(release.cells[0]) if release.cells else None
    if (
        first
        and release.cells[0].metadata.nbgrader.get("locked")
        and kept[0].get("nbgrader", {}).get("grade_id") != first
    ):
        setup = next(c for c in kept if c.get("nbgrader", {}).get("grade_id") == first)
        kept.remove(setup)
        kept.insert(0, setup)
        actions.append(f"set-up cell {first!r} moved back to the top")
    return _notebook(kept, release), actions


def _notebook(cells: list[dict], release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A clean nbformat 4.5 notebook of `cells`, with the release's notebook metadata."""
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(release.metadata))
    seen: set[str] = set()
    for cell in cells:
        make = {
            "code": nbformat.v4.new_code_cell,
            "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell,
        }[cell["cell_type"]]
        new = make(cell["source"])
        if "nbgrader" in cell:
            new.metadata["nbgrader"] = cell["nbgrader"]
        own = cell.get("id")
        if isinstance(own, str) and _CELL_ID.match(own) and own not in seen:
            new.id = own
        while new.id in seen:
            new.id = uuid.uuid4().hex[:8]
        seen.add(new.id)
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


def grade_ids(data: bytes) -> set[str]:
    """The grade ids a notebook's cells name (empty if it is not a notebook)."""
    try:
        cells = _cells(data)
    except NotANotebook:
        return set()
    return {g for c in cells if isinstance(g := _grade_id(c), str)}
