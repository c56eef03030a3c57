"""Shared by tests/test_resume*.py: the overrides of a quick run (ridge, 3 outer folds)."""

from __future__ import annotations

QUICK = ["model=ridge", "cv.outer_folds=3", "explain=false", "final_model=false"]
