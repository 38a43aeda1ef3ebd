"""Property tests: any config file or override, of every kind, loads or fails with a RagtuneError
(which the CLI prints as one line); never another exception (which it would show as a
traceback)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragtune.cli.common import load_job_config
from ragtune.core.errors import RagtuneError
from tests.helpers import ROOT

SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["local", "gpu-a10g-x1", "dense", "/", "..", "0", "-1", "1e309", "~", "null"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths_in(data, prefix=()):
    """Every key path of a nested mapping, the mapping's own included."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_in(value, (*prefix, key))


def load(data_or_text, overrides=None):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        text = data_or_text if isinstance(data_or_text, str) else yaml.safe_dump(data_or_text)
        path.write_text(text)
        try:
            load_job_config(path, overrides)
        except RagtuneError as exc:
            assert str(path) in str(exc) or str(exc).startswith("demo ")  # says which file


@FUZZ
@given(st.sampled_from(SHIPPED), st.data())
def test_any_field_of_any_kind_loads_or_fails_clearly(shipped, data):
    config = yaml.safe_load(shipped.read_text())
    path = data.draw(st.sampled_from(list(paths_in(config))))
    value = data.draw(VALUES)
    if not path:
        load(value if isinstance(value, dict) else {"kind": config.get("kind"), "x": value})
        return
    node = config
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[path[-1]] = value
    else:
        node.pop(path[-1])
    load(config)


@FUZZ
@given(st.sampled_from(SHIPPED), st.lists(st.text(max_size=30), max_size=3))
def test_any_override_loads_or_fails_clearly(shipped, overrides):
    load(shipped.read_text(), overrides)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_loads_or_fails_clearly(text):
    load(text)
