"""Shared by tests/test_explain*.py: a small explanation budget."""

from __future__ import annotations

from n2react.explain import Budget

SMALL = Budget(max_rows=25, fold_rows=10, background=10, n_repeats=3)
