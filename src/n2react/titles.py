"""How a run's figures name it in their titles: the data (with formula descriptors), the model
(pairwise, selector), the protocol, and a long title wrapped. Every figure's title comes from
here (re-exported by :mod:`n2react.figures`)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def data_title(name: str, data: Any) -> str:
    """The data as a title names it: the data set, and whether formula descriptors were added
    (``data.formula``; ``data.formula_columns`` counted), so that two runs differing only in
    them are told apart on their figures."""
    if not (data or {}).get("formula"):
        return name
    columns = data.get("formula_columns")
    return f"{name} + {len(columns)} formula descriptors" if columns else f"{name} + formula"


def model_title(config: Mapping[str, Any], selector: bool = True) -> str:
    """The model as every title of a run names it, from its resolved config: ``model.name``,
    with ``(pairwise)`` when the pairwise wrapper learns it from cluster pairs and the
    descriptor selector when there is one, with its size (``ridge (pairwise, kbest selector
    k=8)``, :func:`selector_title`): the run's own figures and ``n2react explain``'s alike.
    ``selector=False``: without the selector (a figure whose own title names the selection)."""
    model = str((config.get("model") or {}).get("name", "model"))
    notes = []
    if (config.get("pairwise") or {}).get("wrapper") is not None:
        notes.append("pairwise")
    chosen = run_selector_title(config) if selector else None
    if chosen is not None:
        notes.append(chosen)
    return f"{model} ({', '.join(notes)})" if notes else model


def run_selector_title(config: Mapping[str, Any]) -> str | None:
    """The descriptor selector of a run (its resolved config) as its titles name it
    (:func:`selector_title`: ``rfe_vote selector n_features_to_select=8``, ``... searched``
    under a search); None without one (``selector=none``: no step)."""
    node = config.get("selector") or {}
    if node.get("step") is None:
        return None
    return selector_title(node, (config.get("search") or {}).get("kind") is not None)


def selector_title(node: Mapping[str, Any], searched: bool = False) -> str:
    """The selector (a resolved ``selector`` node) as titles name it: its name and the parameters
    its ``space`` declares, the ones that set how many descriptors it keeps (``kbest selector
    k=8``, ``rfe selector n_features_to_select=8``), with their configured values; ``searched``
    (the run has a search, which tunes them in each fold): ``kbest selector k searched``."""
    step = node.get("step") or {}
    params = [
        f"{key} searched" if searched else f"{key}={step[key]}"
        for key in node.get("space") or {}
        if searched or key in step
    ]
    return " ".join([f"{node.get('name') or 'descriptor'} selector", *params])


def label_for_selection(label: str, selector: str) -> str:
    """A sweep job's label (its model and swept values, :func:`n2react.jobs.run_name`:
    ``ridge n_features_to_select=4``, ``ridge rfe_vote``) without what the selection figure's
    own head already says, its selector as :func:`selector_title` names it (``rfe_vote selector
    n_features_to_select=4``): the size and the selector's name are not said twice."""
    if not selector:
        return label
    model, *rest = label.split(" ")
    said = set(selector.split(" ")) - {"selector", "searched"}
    return " ".join([model, *(word for word in rest if word not in said)])


def run_setting(config: Mapping[str, Any]) -> tuple[str, str]:
    """(data, protocol) of a run as its titles say them, from its resolved config
    (``config_resolved.yaml``): ``('homonuclear_15', 'grouped by family (new compositions)')``."""
    from n2react.data import data_name, has_fixed_folds
    from n2react.splitters import protocol_text

    data, cv = config.get("data") or {}, config.get("cv") or {}
    protocol = protocol_text(
        str(cv.get("scheme", "nested")), cv.get("groups"), has_fixed_folds(data)
    )
    return data_title(data_name(data), data), protocol


def run_dir_title(run_dir: Path) -> str | None:
    """What a run directory's model is, as the run's own titles say it (``extra_trees on
    homonuclear_15: grouped by family (new compositions)``), from its config_resolved.yaml;
    None when the folder has none or it cannot be read."""
    import yaml

    from n2react.runstore import CONFIG_FILE

    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        data, protocol = run_setting(config)
    except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError):
        return None
    return f"{model_title(config)} on {data}: {protocol}"


def wrap_title(title: str, width: int = 70) -> str:
    """A title wrapped to lines of ``width`` characters (long sweep names do not run off)."""
    return "\n".join(textwrap.wrap(title, width, break_on_hyphens=False)) if title else ""
