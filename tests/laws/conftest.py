"""Fixtures for the scaling-law tests: Epoch's Chinchilla data (skipped when absent) and its fit."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EPOCH_CSV = ROOT.parent / "shared" / "reference-data" / "chinchilla_fig4_svg_extracted_epoch.csv"


@pytest.fixture(scope="session")
def epoch_path() -> Path:
    if not EPOCH_CSV.is_file():
        pytest.skip(f"reference data absent: {EPOCH_CSV}")
    return EPOCH_CSV


@pytest.fixture(scope="session")
def epoch_data(epoch_path):
    from lmscale.laws import epoch_chinchilla_data

    return epoch_chinchilla_data(epoch_path)


@pytest.fixture(scope="session")
def epoch_law(epoch_data):
    """The full 4500-start Approach-3 fit."""
    from lmscale.laws import ChinchillaLaw

    return ChinchillaLaw().fit(epoch_data)
