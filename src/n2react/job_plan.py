"""The plan of a job: what it needs, read once from the config (:class:`Plan`, built by
:func:`n2react.plan.build_plan`), and the checks it makes on the data before any training
(:meth:`Plan.validate`, with :mod:`n2react.plan_checks` and :mod:`n2react.preflight`).

Split from :mod:`n2react.plan`, which re-exports :class:`Plan` and :class:`Names`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from n2react import plan_checks
from n2react.capabilities import gives_spread
from n2react.composition import DEFAULT_LIGANDS
from n2react.data import Dataset
from n2react.errors import ConfigError, DataError
from n2react.pipeline import PipelineFactory
from n2react.search_spec import SearchSpec
from n2react.splitters import Split, Splitter, group_column, group_labels
from n2react.uncertainty import UncertaintySpec

log = logging.getLogger("n2react.plan")  # its lines keep the name they were logged by


@dataclass(frozen=True)
class Names:
    """Option names of the job: ``model`` for the model tag and the MLflow run's name when no
    job name is given; ``title`` the model as the figures' titles name it (with the pairwise
    wrapper, :func:`n2react.figures.model_title`); ``data`` for messages; ``unselected`` the
    title without the selector, for a figure whose own title names the selection, and
    ``selector`` that selection as it names it (``rfe_vote selector n_features_to_select=8``,
    :func:`n2react.titles.run_selector_title`; empty without a selector)."""

    model: str
    data: str
    title: str
    unselected: str
    selector: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything a job needs, read once from the config."""

    config: dict[str, Any]  # the resolved config (logged as params and config_resolved.yaml)
    names: Names
    make_pipeline: PipelineFactory
    search: SearchSpec
    outer: Splitter
    inner: Splitter
    groups: str | None  # cv.groups: None, metal, family or column:<name>
    scheme: str
    pair_test_fraction: float
    seed: int
    final_model: bool
    explain: bool
    optimized_metric: str
    uses_accelerator: bool
    progress: bool
    data: Mapping[str, Any] = field(default_factory=dict)
    device: Mapping[str, Any] = field(default_factory=dict)
    tracking: Mapping[str, Any] = field(default_factory=dict)
    eval_path: str | None = None
    resume: str | None = None  # a run directory or MLflow run id to continue
    #: conformal intervals / expected error calibrated on the out-of-fold residuals (None: off)
    uncertainty: UncertaintySpec | None = None
    #: the features step multiplies the descriptors pairwise (features.makes_products)
    feature_products: bool = False

    @property
    def ligands(self) -> list[str]:
        """The ligand elements cluster names are read with (``data.formula_ligands``)."""
        return list(self.data.get("formula_ligands") or DEFAULT_LIGANDS)

    @property
    def group_column(self) -> str | None:
        return group_column(self.groups)

    def attach_groups(self, dataset: Dataset) -> Dataset:
        """``dataset`` with its group labels (from the names, or the spreadsheet column)."""
        if self.groups is None or dataset.groups is not None:
            return dataset
        from dataclasses import replace

        labels = group_labels(
            self.groups,
            dataset.clusters,
            source=dataset.source,
            ligands=self.ligands,
            sheet_rows=dataset.rows,
            written=dataset.written,
        )
        return replace(dataset, groups=labels)

    def _warn_fixed_folds(self, dataset: Dataset) -> None:
        cv = self.config.get("cv", {})
        if dataset.folds is not None and self.outer.n_folds(dataset.n_rows) != len(dataset.folds):
            log.warning(
                "cv.outer_folds=%s, cv.repeats=%s do not apply: data=%s has its own %d folds, "
                "and they are the ones used",
                cv.get("outer_folds"),
                cv.get("repeats"),
                self.names.data,
                len(dataset.folds),
            )

    def outer_splits(self, dataset: Dataset) -> list[Split]:
        """The outer folds: the dataset's own (authors' files) or the configured splitter's."""
        if dataset.folds is not None:
            splits = [
                Split(k, 1, np.asarray(tr), np.asarray(te))
                for k, (tr, te) in enumerate(dataset.folds, start=1)
            ]
        else:
            splits = self.outer.split(dataset.n_rows, dataset.groups)
        if dataset.groups is not None:  # what each fold held out (its fold run's tag held_out)
            for s in splits:
                s.held_out = tuple(sorted({str(g) for g in dataset.groups[s.test]}))
                s.grouped_by = str(self.groups or "group")
        return splits

    def validate(self, dataset: Dataset) -> list[Split]:
        """Check everything that can be checked before training; return the outer folds."""
        self._warn_fixed_folds(dataset)
        if len(np.unique(dataset.y)) < 2:
            raise DataError(f"{dataset.source}: lg(k1) is the same for every row; nothing to learn")
        if self.eval_path and not Path(self.eval_path).exists():
            raise DataError(f"eval.path={self.eval_path}: file not found")
        if self.uncertainty is not None and self.uncertainty.calibration_path:
            from n2react.calibration_set import read

            # its columns, labels and size, with one error line before any training
            cols = [str(c) for c in dataset.X.columns]
            X, names, _ = read(
                self.uncertainty.calibration_path, cols, self.uncertainty.coverage, self.ligands
            )
            path = self.uncertainty.calibration_path
            plan_checks.refuse_training_clusters(path, X, names, dataset)
        if self.feature_products:
            plan_checks.products_need_two(self.config, dataset)
        if self.scheme == "pair_split":
            self.preflight(dataset)  # its model and wrapper settings, as a nested run's
            return []
        try:
            splits = self.outer_splits(dataset)
        except DataError as exc:
            raise DataError(f"{dataset.source}: {exc}") from None
        for s in splits:
            if len(s.test) < 3:
                raise DataError(
                    f"{dataset.source}: outer fold {s.fold} would test {len(s.test)} row(s); a "
                    "fold needs at least 3 (use fewer cv.outer_folds or more rows)"
                )
            if len(np.unique(dataset.y[s.train])) < 2:
                raise DataError(
                    f"{dataset.source}: outer fold {s.fold} trains on a constant lg(k1)"
                )
        if self.uncertainty is not None:
            n_oof, need = sum(len(s.test) for s in splits), self.uncertainty.needed()
            short = [s.fold for s in splits if n_oof - len(s.test) < need]
            if short:
                raise DataError(
                    f"{dataset.source}: too few out-of-fold residuals to calibrate prediction "
                    f"intervals ({n_oof - max(len(s.test) for s in splits)} outside a fold; need "
                    f"at least {need}): use more rows, or uncertainty.enabled=false"
                )
        if self.uncertainty is not None and self.uncertainty.uses_neighbours:
            plan_checks.neighbourhood_size(self.uncertainty.k, splits)
        if self.uncertainty is not None and self.uncertainty.needs_spread:
            final = self.make_pipeline().steps[-1][1]
            if not gives_spread(final):
                raise ConfigError(
                    f"uncertainty.difficulty={self.uncertainty.difficulty}: model="
                    f"{self.names.model} gives no spread of its own predictions (forests such as "
                    "extra_trees or rfr, and pairwise models, do); use knn_residual"
                )
        plan_checks.selector_sizes(
            self.make_pipeline(), self.search.space if self.search.active else None, dataset
        )
        self.preflight(dataset, splits)
        if self.search.oracle is not None and not self.search.space:
            log.warning(
                "search=%s: the search space is empty (every entry fixed), so nothing is "
                "searched: each fold fits the configured settings",
                self.config.get("search", {}).get("name"),
            )
        if self.search.active:
            self.search.check(self.make_pipeline())
            from n2react import preflight

            preflight.check_search(self.search, str(self.config.get("search", {}).get("name")))
            preflight.check_space_ends(self.make_pipeline(), dict(self.search.space))
            trials = self.search.max_trials
            if self.search.is_grid and trials and trials < (points := self.search.grid_points()):
                log.warning(
                    "search=grid: search.max_trials=%d runs the first %d of the grid's %d points "
                    "in order (the first values of each range: a corner of the grid), not a "
                    "sample of it; leave search.max_trials unset, or use search=random",
                    trials,
                    trials,
                    points,
                )
            if self.search.is_hyperband and trials:
                first, epochs = self.search.hyperband_first_round()
                if trials <= first:
                    log.warning(
                        "search=hyperband: search.max_trials=%d ends inside Hyperband's first "
                        "round (%d trials of %d epochs), before any trial is promoted: every "
                        "trial, and the refit of the best, trains %d epochs; leave "
                        "search.max_trials unset, or lower search.oracle.max_epochs",
                        trials, first, epochs, epochs,
                    )  # fmt: skip
            if self.search.is_grid:
                from n2react.nested_residuals import nested_searches

                nested = self.uncertainty is not None and self.uncertainty.validation == "nested"
                nested_n = len(nested_searches(splits, dataset.groups)) if nested else 0
                preflight.say_grid_size(self.search, splits, nested_n, self.final_model)
            for s in splits:
                groups = None if dataset.groups is None else dataset.groups[s.train]
                try:
                    self.inner.split(len(s.train), groups)
                except DataError as exc:
                    raise ConfigError(
                        f"outer fold {s.fold}, inner CV of the search: {exc}"
                    ) from None
        return splits

    def preflight(self, dataset: Dataset, splits: list[Split] | None = None) -> None:
        """Degenerate step settings and eval.path's columns, checked before any training
        (``splits``: a nested run's outer folds, which bound its pairs without a final model)."""
        from n2react import preflight

        pipeline = self.make_pipeline()
        if "select" in pipeline.named_steps:
            preflight.check_selector(
                pipeline.named_steps["select"].get_params(deep=False),
                dict(self.search.space) if self.search.active else {},
            )
        if self.eval_path:
            columns = [str(c) for c in dataset.X.columns]
            preflight.check_eval_columns(self.eval_path, columns, self.ligands)
        space = dict(self.search.space) if self.search.active else {}
        test = self.pair_test_fraction if self.scheme == "pair_split" else None
        rows = dataset.n_rows  # the final model's; without one, the largest outer training fold
        if splits and not self.final_model:
            rows = max(len(s.train) for s in splits)
        preflight.check_max_pairs(pipeline.named_steps["model"], rows, test)
        fitted = preflight.check_steps(pipeline, dataset)
        if self.scheme == "nested" and self.uncertainty and self.uncertainty.needs_spread:
            preflight.check_spread_varies(fitted, dataset, self.uncertainty)
        preflight.check_max_features(fitted, dataset, space)
