"""Read one sheet of a spreadsheet (.xlsx/.xlsm) or a delimited text file (.csv/.tsv/.txt) into
a raw table: the delimiter sniffed, the headers stripped and checked (no values under a blank
header, no header twice), the sheet named when the workbook has several and cells holding formulas
warned about. Validating the table cell by cell into a :class:`~n2react.data.tables.Dataset` is
:mod:`n2react.data.tables`'s job. Data warnings are given once per process (:func:`warn_once`).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.errors import DataError, first_line

#: The logger the data warnings had before the split from n2react.data.tables (their log prefix).
log = logging.getLogger("n2react.data.tables")

EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt"}
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log a data warning the first time it is seen in this process (sweeps load a file once per
    job); later repeats go to DEBUG."""
    if message in _warned:
        log.debug("%s", message)
        return
    _warned.add(message)
    log.warning("%s", message)


def forget_warnings() -> None:
    """Forget which data warnings were given (the next load warns again)."""
    _warned.clear()


def read_sheet(p: Path, sheet: str | int | None = 0, announce: bool = True) -> pd.DataFrame:
    """Read one sheet of a spreadsheet (.xlsx) or a delimited text file (.csv/.tsv/.txt, the
    delimiter sniffed), headers stripped, duplicates refused; ``announce``: log the sheet read."""
    check_input_file(p)
    suffix = p.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        df, header = _read_text(p)
    else:
        df, header = _read_excel(p, 0 if sheet is None else sheet, announce)
    df = _check_headers(p, header, df)
    df.columns = [str(c).strip() for c in df.columns]
    return df


#: Spreadsheet formats read by no engine installed here: the refusal says what to save them as.
OTHER_SPREADSHEETS = {".xls", ".ods", ".numbers", ".xlsb"}


def check_input_file(p: Path) -> None:
    """Refuse a folder, a file of a type read_sheet cannot read (an .xls or .ods: save it as
    .xlsx or .csv), or one that is not there."""
    if p.is_dir():
        raise DataError(f"{p}: a folder, not a spreadsheet")
    suffix = p.suffix.lower()
    if suffix not in EXCEL_SUFFIXES | TEXT_SUFFIXES:
        hint = "; save it as .xlsx or .csv" if suffix in OTHER_SPREADSHEETS else ""
        raise DataError(
            f"{p}: unknown file type {suffix or '(no extension)'!r} "
            f"(expected one of {', '.join(sorted(EXCEL_SUFFIXES | TEXT_SUFFIXES))}{hint})"
        )
    if not p.is_file():
        raise DataError(f"{p}: file not found")


def sheet_choice(p: Path, text: str | None) -> str | int:
    """A ``--sheet`` value: the sheet of that name when the workbook has one (sheets named
    '1', '2', '2024' are common), else a whole number is an index from 0; None: the first."""
    if text is None:
        return 0
    if not text.isdigit():
        return text
    if p.suffix.lower() in EXCEL_SUFFIXES and p.is_file():
        try:
            if text in pd.ExcelFile(p, engine="openpyxl").sheet_names:
                return text
        except Exception:  # unreadable: read_sheet says why
            pass
    return int(text)


def not_a_table(df: pd.DataFrame, need: str, fewest: int) -> str:
    """Why a sheet read is not a table of clusters: one column (a notes sheet, its header
    named), none, fewer than ``fewest`` columns (named), or headers with no row below them;
    ``need``: the columns a table needs."""
    if df.shape[1] == 1:  # a notes sheet ('readme' / 'DFT: B3LYP'): not "empty"
        return f"the sheet has one column ('{df.columns[0]}'), not a cluster name and descriptors"
    if df.shape[1] == 0:
        return f"the sheet is empty (need {need})"
    if df.shape[1] < fewest:  # (Clusters, lg(k1)) was "the sheet is empty"
        names = ", ".join(f"'{c}'" for c in df.columns)
        return f"the sheet has {df.shape[1]} columns ({names}): need {need}"
    return "no cluster rows below the header row"


def other_sheets(p: Path, sheet: str | int, option: str | None) -> str:
    """'' for a one-sheet file; else which sheet was read and which others the workbook has."""
    if p.suffix.lower() not in (".xlsx", ".xlsm"):
        return ""
    try:
        names = pd.ExcelFile(p, engine="openpyxl").sheet_names
    except Exception:  # read_sheet read it: nothing more to say
        return ""
    if len(names) < 2:
        return ""
    read = names[sheet] if isinstance(sheet, int) and sheet < len(names) else sheet
    others = ", ".join(f"'{n}'" for n in names if n != read)
    # an option ending in "=" (data.sheet=) takes its value without a space
    how = f"; choose one with {option}{'' if option.endswith('=') else ' '}NAME" if option else ""
    return f" (read sheet '{read}'; the file also has {others}{how})"


def _read_excel(p: Path, sheet: str | int, announce: bool) -> tuple[pd.DataFrame, list[Any]]:
    try:
        df = pd.read_excel(p, sheet_name=sheet, engine="openpyxl")
        raw = pd.read_excel(p, sheet_name=sheet, engine="openpyxl", header=None, nrows=1)
    except ValueError as exc:  # e.g. "Worksheet named 'X' not found"
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise DataError(f"{p}: cannot read sheet {sheet!r}: {first[:200]}{_has(p)}") from exc
    except IndexError as exc:  # a sheet index past the last sheet
        raise DataError(f"{p}: cannot read sheet {sheet!r}: no such sheet{_has(p)}") from exc
    except Exception as exc:  # zip/xml errors from a corrupt or non-spreadsheet file
        reason = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise DataError(
            f"{p}: not a readable {p.suffix.lower()} spreadsheet ({type(exc).__name__}"
            + (f": {reason})" if reason else ")")
        ) from exc
    header = list(raw.iloc[0]) if len(raw) else []
    _announce_sheet(p, sheet, announce)
    return df, header


def _has(p: Path) -> str:
    """' (the file has sheets 'A', 'B')', the sheets to choose from ('' when unreadable)."""
    try:
        names = pd.ExcelFile(p, engine="openpyxl").sheet_names
    except Exception:  # the read failed for another reason: its message says it
        return ""
    return f" (the file has sheet{'s' if len(names) > 1 else ''} " + (
        ", ".join(f"'{n}'" for n in names) + ")"
    )


def _announce_sheet(p: Path, sheet: str | int, announce: bool) -> None:
    """Name the sheet read when the workbook has several, and warn once when cells of it hold
    formulas (their values as last computed and saved by the spreadsheet program are read)."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=False)
    except Exception:  # pandas read it: a format openpyxl reads only partly
        return
    try:
        names = wb.sheetnames
        ws = wb[names[sheet]] if isinstance(sheet, int) else wb[sheet]
        if len(names) > 1 and announce:
            log.info("%s: reading sheet '%s' (%d sheets: %s)", p, ws.title, len(names),
                     ", ".join(names[:6]) + (" ..." if len(names) > 6 else ""))  # fmt: skip
        formulas = [
            c.coordinate
            for row in ws.iter_rows()
            for c in row
            if getattr(c, "data_type", None) == "f"
        ]
    finally:
        wb.close()
    if formulas:
        warn_once(
            f"{p}: {len(formulas)} cell(s) of sheet '{ws.title}' hold formulas (first: "
            f"{formulas[0]}); their values as last saved by the spreadsheet program are read "
            "(recalculate and save the file if they may be stale)"
        )


def _read_text(p: Path) -> tuple[pd.DataFrame, list[Any]]:
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(64 * 1024)
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (save it as UTF-8 CSV)") from exc
    if not sample.strip():
        raise DataError(f"{p}: the file is empty")
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = "\t" if p.suffix.lower() == ".tsv" else ","
    header = next(csv.reader(io.StringIO(sample), delimiter=sep), [])
    # a semicolon file from a spreadsheet in a comma-decimal locale writes 1,5 for 1.5
    decimal = "," if sep == ";" and re.search(r";\s*-?\d+,\d+\s*(;|$)", sample, re.M) else "."
    try:
        # blank lines are kept (and dropped later) so that rows keep their line numbers
        df = pd.read_csv(p, sep=sep, decimal=decimal, encoding="utf-8-sig", skip_blank_lines=False)
    except Exception as exc:  # ragged rows, bad quoting
        first = first_line(exc, 200)
        raise DataError(f"{p}: cannot read as {_sep_name(sep)}-separated text: {first}") from exc
    if df.shape[1] < 3:
        raise DataError(
            f"{p}: only {df.shape[1]} column(s) when split on {_sep_name(sep)}; "
            "save it with one delimiter (comma, semicolon or tab) between columns"
        )
    return df, header


def _sep_name(sep: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(sep, repr(sep))


def _check_headers(p: Path, header: Sequence[Any], df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without its blank columns (no header and no value: an empty spreadsheet column, a
    trailing delimiter); values under no header (after the name column) or a duplicate header
    are refused, not read as a descriptor named 'Unnamed: 17'."""
    seen: dict[str, int] = {}
    blank, excel = [], p.suffix.lower() in EXCEL_SUFFIXES
    for i in range(max(len(header), df.shape[1])):  # a header row may end before the data
        h = header[i] if i < len(header) else None
        if h is None or (isinstance(h, float) and np.isnan(h)) or not str(h).strip():
            if 0 < i < df.shape[1] and df.iloc[:, i].notna().any():
                where = f"column {i + 1}" + (f" ({_letter(i)})" if excel else "")
                raise DataError(f"{p}: {where} holds values but no header; name it or remove it")
            blank += [i] if 0 < i < df.shape[1] else []
            continue
        name = str(h).strip()
        if name in seen:
            raise DataError(
                f"{p}: duplicate column header '{name}' (columns {seen[name] + 1} and {i + 1}); "
                "rename one"
            )
        seen[name] = i
    return df.drop(columns=df.columns[blank])


def _letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i + 1)
