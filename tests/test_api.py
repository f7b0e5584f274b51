"""The public API: every name of ``stageroute.__all__`` resolves, and importing is cheap."""

import subprocess
import sys

import stageroute


def test_every_public_name_resolves():
    for name in stageroute.__all__:
        assert getattr(stageroute, name) is not None


def test_importing_the_package_loads_no_heavy_dependency():
    code = "import sys, stageroute; print(sorted({'polars', 'numba', 'pyomo', 'rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error():
    try:
        stageroute.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
