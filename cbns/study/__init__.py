"""``cbns study``: a grid of training runs from a YAML spec, resumable, summarised in a report.

:mod:`cbns.study.spec` reads the spec, :mod:`cbns.study.cells` expands it into cells (one run
directory each), :mod:`cbns.study.runner` trains the pending ones, and :mod:`cbns.study.report`
writes ``report.md``, ``results.json`` and the plots.
"""
from cbns.study.runner import StudyRun, run_study
from cbns.study.spec import StudySpec, bundled_specs, load_spec, parse_spec

__all__ = ["StudyRun", "StudySpec", "bundled_specs", "load_spec", "parse_spec", "run_study"]
