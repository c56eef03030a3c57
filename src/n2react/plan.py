"""The composed config, read once into a frozen plan; downstream code takes the plan.

Downstream modules get plain objects from the plan, never the Hydra config: the ``data``,
``device`` and ``tracking`` nodes travel as plain dicts to the module that owns them, and the
whole resolved config only to be logged and compared on resume.

``build_plan(cfg)`` resolves the Hydra config into plain objects: the pipeline factory, the
(already prefixed) search space and oracle settings, the outer and inner splitters, the grouping,
the scheme and what the model declares it can do. ``Plan.validate(dataset)`` checks, before any
training, everything that can be checked.

The :class:`Plan` itself and its checks before training are in :mod:`n2react.job_plan` (split from
here: :class:`Plan` and :class:`Names` are re-exported here, where callers import them).
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from n2react.capabilities import epochs_param, uses_accelerator
from n2react.data import data_name, has_fixed_folds
from n2react.errors import ConfigError, DataError
from n2react.figures import model_title
from n2react.job_plan import Names as Names  # callers import these here
from n2react.job_plan import Plan as Plan
from n2react.metrics import summary_keys
from n2react.pipeline import PipelineFactory, search_space
from n2react.preflight import check_pairwise
from n2react.search_spec import SearchSpec
from n2react.splitters import Splitter, check_grouping
from n2react.titles import run_selector_title
from n2react.uncertainty import UncertaintySpec

SCHEMES = ("nested", "pair_split")
#: cv.pair_test_fraction of a pair split, lowest and highest: neither side of the split tiny
PAIR_TEST_FRACTION = (0.05, 0.5)


def _in_data_dir(path: str) -> str:
    """``path``, else the file of that name in ``$N2_DATA_DIR``, as a calibration file is found
    (a path found in neither is kept: :meth:`Plan.validate` says it is not found)."""
    from n2react.calibration_set import locate

    try:
        return str(locate(path))
    except DataError:
        return path


def _node(cfg: DictConfig, key: str) -> dict[str, Any] | None:
    value = OmegaConf.select(cfg, key)
    if value is None:
        return None
    if not isinstance(value, DictConfig):  # scaler.step=hello was a traceback in OmegaConf
        raise ConfigError(f"{key}={value!r}: expected a config node (with a _target_) or null")
    return dict(OmegaConf.to_container(value, resolve=True))  # type: ignore[arg-type]


def _splitter(node: Any, key: str) -> Splitter:
    try:
        out = instantiate(node, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError | DataError):
            raise cause from None
        # the error the class raised, not Hydra's wrapper (whose last line is "full_key: ...")
        msg = str(cause or exc).strip().splitlines()
        msg = [ln for ln in msg if not ln.startswith("full_key:")]
        raise ConfigError(f"{key}: cannot build it: {msg[-1] if msg else exc}") from exc
    if not isinstance(out, Splitter):
        raise ConfigError(f"{key}: {type(out).__name__} is not an n2react.splitters.Splitter")
    return out


def build_plan(cfg: DictConfig) -> Plan:
    """Read the composed config once into a :class:`Plan` (config errors are ConfigErrors)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    metric = str(cfg.optimized_metric)
    if metric not in summary_keys():
        raise ConfigError(
            f"optimized_metric={metric!r}: expected one of mean_test_rmse, mean_test_r, "
            "mean_test_mae, mean_test_r2, pooled_test_rmse, ... (or their std_/train_ forms)"
        )
    seed = cfg.get("seed")
    if seed is None or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a whole number >= 0")
    scheme = str(cfg.cv.get("scheme", "nested"))
    if scheme not in SCHEMES:
        raise ConfigError(f"cv.scheme={scheme!r}: expected nested or pair_split")
    features, wrapper = cfg.get("features"), cfg.get("pairwise")
    _check_pairwise_name(wrapper)
    products = bool(OmegaConf.select(cfg, "features.makes_products", default=False))
    if products and OmegaConf.select(cfg, "data.holds_products", default=False):
        raise ConfigError(
            f"features={cfg.features.name}: data={data_name(cfg.data)} already holds the "
            "descriptors' pairwise products (data.holds_products=true), and multiplying them "
            "again gives thousands of inputs: use features=raw"
        )
    factory = PipelineFactory(
        imputer=_node(cfg, "imputer") or {},
        model=_node(cfg, "model.estimator") or {},
        features=_node(cfg, "features.step") if features is not None else None,
        scaler=_node(cfg, "scaler.step"),
        selector=_node(cfg, "selector.step"),
        wrapper=_node(cfg, "pairwise.wrapper") if wrapper is not None else None,
    )
    model = factory().steps[-1][1]  # built once to ask what it can do
    uses_model = [
        k for k in ("eval.path", "uncertainty.calibration_path") if OmegaConf.select(cfg, k)
    ]
    check_pairwise(model, str(cfg.model.name), scheme, uses_model)
    space = search_space(factory, _node(cfg, "model.space"), _node(cfg, "selector.space"))
    search = SearchSpec.from_config(
        _node(cfg, "search") or {}, space, epochs_param(model, "model__")
    )
    final_model, explain, progress = (
        _flag(cfg.get(k, True), k) for k in ("final_model", "explain", "progress")
    )
    for key in ("tracking.enabled", "tracking.log_model", "data.formula", "device.mixed_precision"):
        if (value := OmegaConf.select(cfg, key)) is not None:
            _flag(value, key)
    frac = cfg.cv.get("pair_test_fraction", 0.2)
    if isinstance(frac, bool) or not isinstance(frac, int | float):
        raise ConfigError(f"cv.pair_test_fraction={frac!r}: expected a fraction, e.g. 0.2")
    # 0.9999 ran on 3 training pairs: a split whose training or test side is tiny scores nothing
    if scheme == "pair_split" and not PAIR_TEST_FRACTION[0] <= frac <= PAIR_TEST_FRACTION[1]:
        low, high = PAIR_TEST_FRACTION
        raise ConfigError(
            f"cv.pair_test_fraction={frac}: the share of pairs held out for testing must be from "
            f"{low} to {high} (the paper's is 0.2)"
        )
    eval_path = OmegaConf.select(cfg, "eval.path")
    if eval_path and not final_model:
        raise ConfigError("eval.path: scoring it needs the final model (final_model=true)")
    groups = check_grouping(cfg.cv.get("groups"))
    if groups is not None and has_fixed_folds(cfg.data):  # before its names are read
        raise ConfigError(
            f"cv.groups={groups}: data={data_name(cfg.data)} has its own fixed folds; "
            "use cv.groups=none with it"
        )
    unc = _uncertainty(cfg)
    if unc is not None and unc.calibration_path and not final_model:
        raise ConfigError(
            "uncertainty.calibration_path: calibrating on it needs the final model "
            "(final_model=true)"
        )
    return Plan(
        config=resolved,
        names=Names(
            model=str(cfg.model.name),
            data=data_name(cfg.data),
            title=model_title(resolved),
            unselected=model_title(resolved, selector=False),
            selector=run_selector_title(resolved) or "",
        ),
        make_pipeline=factory,
        search=search,
        outer=_splitter(cfg.cv.outer, "cv.outer"),
        inner=_splitter(cfg.cv.inner, "cv.inner"),
        groups=groups,
        scheme=scheme,
        pair_test_fraction=float(frac),
        seed=int(seed),
        final_model=final_model,
        explain=explain,
        optimized_metric=metric,
        uses_accelerator=uses_accelerator(model),
        progress=progress,
        data=_node(cfg, "data") or {},
        device=_node(cfg, "device") or {},
        tracking=_node(cfg, "tracking") or {},
        eval_path=_in_data_dir(str(eval_path)) if eval_path else None,
        resume=str(cfg.resume) if cfg.get("resume") else None,
        uncertainty=unc,
        feature_products=products,
    )


def _check_pairwise_name(node: Any) -> None:
    """``pairwise.name`` is what the run logs: ``off`` exactly when there is no wrapper (a
    ``pairwise=on pairwise.wrapper=null`` ran a plain model logged as pairwise.name=on)."""
    if node is None:
        return
    name, wrapper = str(node.get("name")), OmegaConf.select(node, "wrapper")
    if wrapper is None and name != "off":
        raise ConfigError(
            f"pairwise.wrapper=null: pairwise={name} would run a plain model logged as "
            "pairwise; use pairwise=off"
        )
    if wrapper is not None and name == "off":
        raise ConfigError("pairwise.wrapper: set with pairwise=off; use pairwise=on")


def _flag(value: Any, key: str) -> bool:
    """A true/false key; a typo (``explain=flase``) is refused, not read as true."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r}: expected true or false")
    return value


def _uncertainty(cfg: DictConfig) -> UncertaintySpec | None:
    node = _node(cfg, "uncertainty") or {}
    if not _flag(node.pop("enabled", True), "uncertainty.enabled"):
        return None
    return UncertaintySpec.from_config(node)
