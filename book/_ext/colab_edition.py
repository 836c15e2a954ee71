"""The Colab edition of each chapter: the same notebook, with the book's MyST markup resolved.

Colab renders plain Markdown, so a chapter opened there as written showed ``{glue:text}`` roles
where the numbers belong, raw ``{cite:p}`` keys and directives as code blocks. The edition that
the book's Colab button opens (``book/colab/<chapter>.ipynb``) is generated from the chapter:

- citations become "(Author et al., Year)", from ``book/references.bib``;
- admonitions become quotes, and dropdowns (the answers to the questions) ``<details>`` blocks;
- ``{glue:figure}`` becomes its caption (the figure itself shows below the code cell that glues
  it: `cnncourse.notebook.glue` displays figures where myst-nb is absent);
- links to other pages point to their Colab edition or to the repository;
- a paragraph that cites computed numbers becomes a small hidden code cell that displays it with
  the numbers filled in (`cnncourse.notebook.show_markdown`), since a Markdown cell cannot hold a
  value the code computes; it fills in when the cells above it have run.

Code cells are kept as they are; those the book hides are collapsed into Colab forms. The
editions are committed, and a test checks that they are what this script makes of the chapters:
``python book/_ext/colab_edition.py`` (or ``make colab``) regenerates them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

from cnncourse.notebook import GLUE_ROLE

BOOK = Path(__file__).resolve().parents[1]
ROOT = BOOK.parent
OUT = BOOK / "colab"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO = CONFIG["repository"]["url"].removeprefix("https://github.com/")
BRANCH = CONFIG["repository"].get("branch", "main")
COLAB = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}"
GITHUB = f"https://github.com/{REPO}/blob/{BRANCH}"

FENCE = re.compile(r"^(?P<fence>```+|:::+)\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
ROLE = re.compile(r"\{(?P<role>cite:p|cite:t|cite|doc|ref|numref|eq)\}`(?P<body>[^`]+)`")
LINK = re.compile(r"\]\((?P<target>[^)\s#]+\.(?:ipynb|md))(?P<anchor>#[^)]*)?\)")
QUOTED = {"note": "Note", "tip": "Tip", "warning": "Warning", "important": "Important"}
QUOTED |= {"caution": "Caution", "seealso": "See also", "hint": "Hint"}


def chapters() -> list[Path]:
    """The book's notebook pages: the chapters (01, 02, ...) and the model zoo."""
    return sorted(BOOK.glob("*.ipynb"))


def _citations() -> dict[str, tuple[str, str]]:
    """BibTeX key -> (authors as cited, year), e.g. ("LeCun et al.", "1998")."""
    from pybtex.database import parse_file

    cited = {}
    for key, entry in parse_file(str(BOOK / "references.bib")).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
        last = last or [entry.fields.get("title", key)]
        names = last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2 else ""
        cited[key] = (names or f"{last[0]} et al.", entry.fields.get("year", "n.d."))
    return cited


def _role(m: re.Match, here: Path, cited: dict[str, tuple[str, str]]) -> str:
    role, body = m["role"], m["body"]
    if role.startswith("cite"):
        refs = [cited[k.strip()] for k in body.split(",")]
        if role == "cite:t":
            return "; ".join(f"{a} ({y})" for a, y in refs)
        return "(" + "; ".join(f"{a}, {y}" for a, y in refs) + ")"
    text, target = re.match(r"^(.*?)(?:\s*<(.+)>)?$", body).groups()
    if role == "doc":
        return f"[{text}]({_url(here, (target or text) + '.md')})"
    return text  # ref, numref, eq: the label's words (a Colab page has no numbered targets)


def _url(here: Path, target: str) -> str:
    """Where a link of the chapter `here` to `target` (relative path) goes from Colab."""
    path = (here.parent / target).resolve()
    if path.suffix == ".md" and path.with_suffix(".ipynb").exists():
        path = path.with_suffix(".ipynb")
    if not path.exists() and path.with_suffix(".ipynb").exists():
        path = path.with_suffix(".ipynb")
    rel = path.relative_to(ROOT).as_posix()
    if path.suffix == ".ipynb":
        if path.parent == BOOK and path in chapters():
            rel = f"book/colab/{path.name}"
        return f"{COLAB}/{rel}"
    return f"{GITHUB}/{rel}"


def _directives(text: str) -> str:
    """Each fenced directive turned into plain Markdown (innermost first: fences nest)."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        close = m["fence"][0] * len(m["fence"])
        j, depth = i + 1, 0
        while j < len(lines):
            inner = FENCE.match(lines[j])
            if inner and inner["fence"] == close:
                depth += 1
            elif lines[j].strip() == close:
                if depth == 0:
                    break
                depth -= 1
            j += 1
        body = lines[i + 1 : j]
        options = {}
        while body and re.match(r"^:[\w-]+:", body[0]):
            key, _, value = body.pop(0)[1:].partition(":")
            options[key] = value.strip()
        out.extend(_directive(m["name"], m["arg"].strip(), options, _directives("\n".join(body))))
        i = j + 1
    return "\n".join(out)


def _directive(name: str, arg: str, options: dict[str, str], body: str) -> list[str]:
    body = body.strip("\n")
    if name == "admonition" and "dropdown" in options.get("class", ""):
        return [f"<details><summary><b>{arg}</b></summary>", "", body, "", "</details>"]
    if name == "admonition" or name in QUOTED:
        title = arg if name == "admonition" else QUOTED[name]
        return [f"> **{title}.**", ">", *(f"> {line}".rstrip() for line in body.split("\n"))]
    if name == "glue:figure":
        return [f"*Figure (shown below the code cell that draws it): {body}*"]
    if name == "math":
        return ["$$", body, "$$"]
    raise ValueError(f"no Colab form for the directive {{{name}}}: add it to _directive")


def markdown_for_colab(text: str, here: Path, cited: dict[str, tuple[str, str]]) -> str:
    """A chapter's Markdown cell with its MyST markup resolved (glue roles are left for
    `cnncourse.notebook.show_markdown` to fill in at run time)."""
    text = "\n".join(line for line in text.split("\n") if not re.match(r"^\([\w-]+\)=$", line))
    text = _directives(text)
    text = ROLE.sub(lambda m: _role(m, here, cited), text)
    return LINK.sub(lambda m: f"]({_url(here, m['target'])}{m['anchor'] or ''})", text)


NOTE = (
    "> **The Colab edition of this chapter.** The book's web page shows the same text and "
    "figures. Here, run the cells in order (*Runtime → Run all*): paragraphs that quote numbers "
    "the code computes fill in when the cells above them have run, and each figure shows below "
    "the code that draws it."
)


GLUED_BY = re.compile(r"""\bglue\(\s*(?P<f>f?)["'](?P<name>[^"']+)["']""")


def glued_patterns(source: str) -> set[str]:
    """The names a code cell glues, as regular expressions: ``glue("n", ...)`` gives ``n``, and
    ``glue(f"share_{name}", ...)`` in a loop gives ``share_.+``."""
    out = set()
    for m in GLUED_BY.finditer(source):
        parts = re.split(r"\{[^}]*\}", m["name"]) if m["f"] else [m["name"]]
        out.add(".+".join(map(re.escape, parts)))
    return out


def unmet(names: set[str], patterns: set[str], known: set[str] | None = None) -> set[str]:
    """The `names` that none of `patterns` glues. A name that some pattern of `known` (every
    pattern of the page) matches specifically, with a few letters of its own, is met only by
    such a pattern: ``glue(f"{name}_{key}", ...)`` (``.+_.+``) would match almost any name."""
    known = patterns if known is None else known
    out = set()
    for n in names:
        specific = {p for p in known if len(_letters(p)) >= 3 and re.fullmatch(p, n)}
        if not any(re.fullmatch(p, n) and (not specific or p in specific) for p in patterns):
            out.add(n)
    return out


def _letters(pattern: str) -> str:
    return re.sub(r"\.\+|\\|_", "", pattern)


def _after_its_numbers(cells: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """Each prose cell moved down past the code cells right after it that glue its numbers.

    The book resolves a glue role wherever the value is computed, so a paragraph may come just
    before the code that computes its numbers; run in order, that paragraph would find them
    missing. Prose never moves past another prose cell: the reading order stays."""
    cells, done, i = list(cells), set(), 0  # done: what the cells before i glue (patterns)
    known = set().union(*(glued_patterns(c.source) for c in cells))
    while i < len(cells):
        if "show_markdown" not in cells[i].source:
            done |= glued_patterns(cells[i].source)
            i += 1
            continue
        names, j = (
            unmet({m["name"] for m in GLUE_ROLE.finditer(cells[i].source)}, done, known),
            i + 1,
        )
        while names and j < len(cells) and cells[j].cell_type == "code":
            if "show_markdown" in cells[j].source:
                break
            names = unmet(names, glued_patterns(cells[j].source), known)
            j += 1
        if j > i + 1 and not names:  # cells i+1 .. j-1 compute them: the prose goes after
            cells.insert(j - 1, cells.pop(i))
            for cell in cells[i : j - 1]:
                done |= glued_patterns(cell.source)
            i = j
        else:
            i += 1
    return cells


def colab_edition(chapter: Path) -> nbformat.NotebookNode:
    """The Colab edition of `chapter` (a notebook of the book), without outputs."""
    nb, cited = nbformat.read(chapter, as_version=4), _citations()
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = markdown_for_colab(cell.source, chapter, cited)
            if GLUE_ROLE.search(text):
                if '"""' in text or text.endswith("\\"):
                    raise ValueError(f"{chapter.name}: a paragraph a raw string cannot hold")
                code = f'# @title {{display-mode: "form"}}\nshow_markdown(r"""\n{text}\n""")'
                cells.append(nbformat.v4.new_code_cell(code, metadata={"cellView": "form"}))
            else:
                cells.append(nbformat.v4.new_markdown_cell(text))
            if len(cells) == 1:  # after the title
                cells.append(nbformat.v4.new_markdown_cell(NOTE))
            continue
        new = nbformat.v4.new_code_cell(cell.source)
        hidden = {"hide-input", "remove-input", "remove-cell"}
        if set(cell.metadata.get("tags", [])) & hidden and not cell.source.startswith("# Set-up"):
            new.source = f'# @title {{display-mode: "form"}}\n{cell.source}'
            new.metadata["cellView"] = "form"
        cells.append(new)
    setup = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    if any("show_markdown(" in c.source for c in cells[:setup]):
        raise ValueError(f"{chapter.name}: a number is quoted before the set-up cell has run")
    cells.insert(
        setup + 1, nbformat.v4.new_code_cell("from cnncourse.notebook import show_markdown")
    )
    out = nbformat.v4.new_notebook(cells=_after_its_numbers(cells), metadata=nb.metadata)
    for i, cell in enumerate(out.cells):  # stable ids: the same chapter gives the same file
        cell.id = f"colab-{i:03d}"
    return out


def write_all() -> list[Path]:
    OUT.mkdir(exist_ok=True)
    written = []
    for chapter in chapters():
        path = OUT / chapter.name
        path.write_text(nbformat.writes(colab_edition(chapter)))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
