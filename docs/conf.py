"""Sphinx configuration of the mosaic_parallel documentation (built by ``make docs``)."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

# Importing the bridge for autodoc imports Qt; no display is needed or used.
os.environ.setdefault("QT_API", "pyqt6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import mosaic_parallel

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK_RESULTS = ROOT / "benchmarks" / "results" / "latest.md"

project = "mosaic_parallel"
author = "mosaic_parallel developers"
copyright = "2026, mosaic_parallel developers"
release = version = mosaic_parallel.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# The benchmark results page is written by a script; a skipped heading level there is no error.
suppress_warnings = ["myst.header"]

html_theme = "furo"
html_title = f"mosaic_parallel {release}"

# Every reference to a name of this package must resolve; names of Python, Qt and other
# libraries have no inventory here (the docs build offline), so they are let through.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!mosaic_parallel\b).*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True}

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
# The manager's docstring lists its Qt signals like parameters.
napoleon_custom_sections = [("Signals", "params_style")]


# --------------------------------------------------------------------------- signals
def _is_signal(obj: object) -> bool:
    return type(obj).__name__ in {"pyqtSignal", "Signal"}


def _skip_signals(
    app: Sphinx, what: str, name: str, obj: object, skip: bool, options: Any
) -> bool | None:
    """Qt signals are described by the class docstring and the signal table, not one by one."""
    return True if _is_signal(obj) else None


def _end_signals_section(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """Keep a paragraph that follows the "Signals" entries out of the last entry.

    Napoleon reads everything up to the next section header as entries, so an unindented
    paragraph after the list would be shown as one more signal; it becomes a "Notes" section.
    """
    in_signals = False
    for i, line in enumerate(lines):
        if line.strip() == "Signals" and i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:
            in_signals = True
            continue
        if not in_signals or not line or line[0].isspace() or set(line) == {"-"}:
            continue
        if not re.fullmatch(r"\w+\(.*\)", line.strip()):
            if i + 1 < len(lines) and lines[i + 1] and set(lines[i + 1]) == {"-"}:
                in_signals = False  # the next section header
                continue
            lines[i:i] = ["Notes", "-----"]
            return


# --------------------------------------------------------------------------- {src} role
def _src_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``{src}`bridge:BackgroundTaskManager._dispatch``` names code and links to its source.

    The name is checked when the docs are built, so a page that names code which was
    renamed or removed fails the build instead of sending a reader to nothing.
    """
    module, _, qualname = text.partition(":")
    modname = f"mosaic_parallel.{module}" if module != "mosaic_parallel" else module
    try:
        obj: Any = importlib.import_module(modname)
        for part in filter(None, qualname.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        message = inliner.reporter.warning(
            f"{{src}} names {text!r}, which does not exist in the code", line=lineno
        )
        return [nodes.literal(rawtext, text)], [message]
    env = inliner.document.settings.env
    env.note_dependency(importlib.import_module(modname).__file__)
    if not hasattr(env, "src_targets"):
        env.src_targets = set()
    env.src_targets.add((modname, qualname, env.docname))
    label = f"{module}.py" + (f": {qualname}" if qualname else "")
    uri = f"_modules/{modname.replace('.', '/')}.html" + (f"#{qualname}" if qualname else "")
    node = nodes.reference(rawtext, "", internal=False, refuri=uri, classes=["src-link"])
    node += nodes.literal(text=label)
    return [node], []


def _anchor_src_targets(app: Sphinx) -> list[Any]:
    """Give every name linked with {src} an anchor on its viewcode page.

    viewcode anchors only what autodoc documented; private helpers named on the
    architecture page get one this way. Without viewcode's bookkeeping (a Sphinx change),
    links still open the module's source page.
    """
    env = app.env
    modules = getattr(env, "_viewcode_modules", None)
    if not isinstance(modules, dict):
        return []
    for modname, qualname, docname in getattr(env, "src_targets", ()):
        entry = modules.get(modname)
        if not qualname or not isinstance(entry, tuple) or len(entry) != 4:
            continue
        _code, tags, used, _refname = entry
        if qualname in tags and qualname not in used:
            used[qualname] = docname
    return []  # no pages of its own


def _purge_src_targets(app: Sphinx, env: Any, docname: str) -> None:
    targets = getattr(env, "src_targets", None)
    if targets:
        env.src_targets = {t for t in targets if t[2] != docname}


# --------------------------------------------------------------------------- benchmarks
def _insert_benchmark_results(app: Sphinx, docname: str, source: list[str]) -> None:
    """Put the latest benchmark table into benchmarks.md, or say how to make one."""
    if docname != "benchmarks":
        return
    if BENCHMARK_RESULTS.exists():
        app.env.note_dependency(str(BENCHMARK_RESULTS))
        text = (
            "```{include} ../benchmarks/results/latest.md\n"
            ":relative-images:\n"
            ":heading-offset: 2\n"
            "```\n"
        )
    else:
        text = (
            "No results yet: `benchmarks/results/latest.md` does not exist in this checkout. "
            "Run `make bench` and build the docs again.\n"
        )
    source[0] = source[0].replace("<!-- latest benchmark results -->", text)


def setup(app: Sphinx) -> dict[str, Any]:
    """Connect this project's small additions to Sphinx."""
    app.add_role("src", _src_role)
    app.connect("autodoc-skip-member", _skip_signals)
    app.connect("autodoc-process-docstring", _end_signals_section, priority=400)  # before napoleon
    app.connect("source-read", _insert_benchmark_results)
    app.connect("env-purge-doc", _purge_src_targets)
    app.connect("html-collect-pages", _anchor_src_targets, priority=400)
    return {"parallel_read_safe": False}
