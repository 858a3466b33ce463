"""The test set-up itself (`conftest.py`, `helpers.py`): in CI an installed extra that does not
import fails its tests rather than skipping them."""

import sys

import pytest
from helpers import importorskip_in_ci


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_broken_installed_package_fails_in_ci_and_skips_elsewhere(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # installed, but its import now fails
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected):
        importorskip_in_ci("sklearn", reason="needs scikit-learn")


def test_a_package_that_is_not_installed_still_skips_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception):
        importorskip_in_ci("no_such_package_fdrl_test")
    assert importorskip_in_ci("numpy") is sys.modules["numpy"]
