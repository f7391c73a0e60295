"""The production build's JavaScript, gzipped, stays within the budget a trader on a phone can afford."""

from __future__ import annotations

import gzip

import pytest

from tests.procs import ROOT

DIST = ROOT / "frontend" / "dist"
BUDGET_KB = 250.0


def test_production_js_is_within_budget() -> None:
    if not (DIST / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make spa` (make test builds it)")
    scripts = sorted((DIST / "assets").glob("*.js"))
    assert scripts, "the build has no JavaScript"
    total_kb = sum(len(gzip.compress(path.read_bytes(), compresslevel=9)) for path in scripts) / 1024
    print(f"\nproduction JS: {len(scripts)} files, {total_kb:.1f} KB gzipped (budget {BUDGET_KB:.0f} KB)")
    assert total_kb <= BUDGET_KB
