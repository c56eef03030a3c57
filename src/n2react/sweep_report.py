"""The sweep report a chemist opens: ``sweep_report.html`` (self-contained) and its chart
``sweep_report.png`` in the sweep folder, from the leaderboard (:mod:`n2react.leaderboard`).

The jobs ranked best first with their full names and overrides, each figure with its 95 %
bootstrap interval, the ranking metric's paired difference with the best job (its interval and
P(best better)), failed jobs with their error, and one chart: the ranking metric per job with its
interval.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from n2react.board import KEY_METRICS, SCORED, VS_BEST, higher_is_better, vs_best_note
from n2react.bootstrap import MIN_UNITS_FOR_VERDICT
from n2react.figures import LGK1, run_setting, save_figure, wrap_title
from n2react.runstore import write_text

HTML_FILE, PNG_FILE = "sweep_report.html", "sweep_report.png"


def _num(v: object) -> bool:
    return isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v))


def _fig(row: pd.Series, m: str, digits: int = 3) -> str:
    if not _num(row.get(m)):
        return ""
    low, high = row.get(f"{m}_ci_low"), row.get(f"{m}_ci_high")
    ci = f" [{low:.{digits}f}, {high:.{digits}f}]" if _num(low) and _num(high) else ""
    return f"{row[m]:.{digits}f}{ci}"


#: Each job's (data, protocol) as the runs' own titles say them, keyed by the board's ``dir``.
Settings = dict[str, tuple[str, str]]


def _what(settings: Settings) -> str:
    """The data and protocol the jobs ran under, as the runs' own titles say them; every
    distinct one when the jobs differ."""
    return "; ".join(dict.fromkeys(f"{d}: {p}" for d, p in settings.values()))


def protocols(settings: Settings, dirs: Iterable[str]) -> list[str]:
    """The distinct CV protocols the jobs in ``dirs`` ran under, in the runs' own words."""
    return list(dict.fromkeys(settings[d][1] for d in dirs if d in settings))


def job_settings(board: pd.DataFrame, sweep_dir: Path) -> Settings:
    """(data, protocol) of each job of ``board`` that wrote its config_resolved.yaml, read once
    for the report's title and the sweep's protocol warning alike."""
    import yaml

    out: Settings = {}
    for d in board.get("dir", pd.Series(dtype=str)).dropna().astype(str):
        if not d:
            continue
        job = Path(d) if Path(d).is_dir() else sweep_dir / Path(d).name
        try:
            cfg = yaml.safe_load((job / "config_resolved.yaml").read_text(encoding="utf-8"))
            out[d] = run_setting(cfg)
        except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError):
            continue  # a job that failed before writing its config
    return out


def chart(board: pd.DataFrame, metric: str, path: Path, what: str = "") -> Path:
    """The ranking metric per job (best at the top) with its 95 % interval; failed jobs marked;
    the title says the data and protocol (``what``), the axis the unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(board)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.42 * n), dpi=110)
    labels = []
    for y, (_, row) in enumerate(board.iterrows()):
        name = "\n".join(textwrap.wrap(f"#{row['rank']} {row['name']}", 48)) or "?"
        labels.append(name)
        if row["status"] not in SCORED or not _num(row.get(metric)):
            ax.annotate(str(row["status"]), (0.01, y), xycoords=("axes fraction", "data"),
                        va="center", color="tab:red")  # fmt: skip
            continue
        low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
        err = [[row[metric] - low], [high - row[metric]]] if _num(low) and _num(high) else None
        colour = "tab:green" if row["rank"] == 1 else "tab:blue"
        ax.errorbar(row[metric], y, xerr=err, fmt="o", color=colour, capsize=3)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    better = "higher" if higher_is_better(metric) else "lower"
    unit = f", {LGK1} units" if metric.endswith(("_rmse", "_mae")) else ""
    ax.set_xlabel(f"{metric} ({better} is better{unit}), 95 % bootstrap interval")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(wrap_title(f"{n} jobs ranked by {metric}" + (f" ({what})" if what else ""), 100),
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, path)  # whole or not at all, its title and texts in the PNG


def _vs_best(row: pd.Series) -> tuple[str, str]:
    if row["rank"] == 1 and row["status"] in SCORED:
        return "best", ""
    if not _num(row.get("vs_best")):
        return "", ""
    diff = f"{row['vs_best']:+.3f} [{row['vs_best_ci_low']:+.3f}, {row['vs_best_ci_high']:+.3f}]"
    return diff, f"{row['p_best_better']:.2f}"


def to_html(board: pd.DataFrame, metric: str, title: str, png: bytes) -> str:
    others = [m for m in KEY_METRICS if m != metric and m in board]
    head = ["rank", "job", "run name", metric, "vs best [95% CI]", "P(best better)", *others]
    head += ["status", "overrides (in full)", "MLflow run id"]
    rows = []
    for _, row in board.iterrows():
        vs, p = _vs_best(row)
        status = str(row["status"]) + (f": {row['error']}" if row.get("error") else "")
        cells = [row["rank"], row["job"], row["name"], _fig(row, metric), vs, p]
        cells += [_fig(row, m) for m in others]
        cells += [status, row.get("overrides", ""), row.get("run_id", "") or ""]
        cls = ' class="failed"' if row["status"] not in SCORED else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells))
    image = base64.b64encode(png).decode("ascii")
    note = vs_best_note(board, metric)
    few = f'<p class="note"><b>{html.escape(note)}</b></p>\n' if note else ""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "</tr>\n".join(rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }}
th {{ background: #f0f0f0; }} tr.failed td {{ color: #a00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Each figure carries its 95 % bootstrap interval (the outer folds for a mean_* figure, the
clusters or, under a grouped CV, the metals or families for a pooled_* figure). "vs best" is the
job's {html.escape(metric)} minus the best job's, with the interval of a paired bootstrap (the same
draws for both jobs); P(best better) is the share of resamples in which the best job is better.
A job is worse than the best only where that interval excludes zero and rests on at least
{MIN_UNITS_FOR_VERDICT} units (an exact sign-flip test on fewer cannot reach p &lt; 0.05).</p>
{few}
<img alt="{html.escape(metric)} per job with its interval" src="data:image/png;base64,{image}">
<table><tr>{header}</tr>
{body}</tr></table>
</body></html>
"""


def write_report(
    board: pd.DataFrame, metric: str, sweep_dir: Path, title: str, settings: Settings
) -> list[Path]:
    """sweep_report.png and sweep_report.html in ``sweep_dir`` (each written whole);
    ``settings``: the jobs' data and protocols (:func:`job_settings`)."""
    assert all(c in board for c in VS_BEST)
    png = chart(board, metric, sweep_dir / PNG_FILE, _what(settings))
    page = write_text(sweep_dir / HTML_FILE, to_html(board, metric, title, png.read_bytes()))
    return [page, png]
