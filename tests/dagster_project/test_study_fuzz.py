"""The study YAML fuzzed: every mutated config is accepted or refused with one line that names
the key, never a traceback (property-based, fixed seed, a few hundred cases)."""

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from dagster_project.study_rules import StudyConfigError
from dagster_project.study import StudyConfig, parse_study

BASE = {"model": "demo", "checkpoints": "ckpts",
        **StudyConfig(model="demo").model_dump(exclude={"model", "checkpoints"})}

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                 st.floats(allow_nan=True), st.text(max_size=8),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                      st.integers(), max_size=2))


def _paths(node, prefix=()):
    """Every key path of the nested mapping."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@st.composite
def mutated(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["delete", "retype", "nest", "unknown"]))
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "retype":
            parent[path[-1]] = draw(junk)
        elif kind == "nest":
            parent[path[-1]] = {"value": parent[path[-1]]}
        else:
            parent[draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))] = draw(junk)
    return data


@seed(20261204)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_study_is_accepted_or_refused_in_one_line_naming_the_key(data):
    text = yaml.safe_dump(data)  # through YAML, as a user's file would be
    try:
        parse_study(yaml.safe_load(text), Path("/tmp"))
    except StudyConfigError as e:
        message = str(e)
        assert "\n" not in message and "Traceback" not in message
        assert message.startswith("study config") or any(
            str(part) in message for path in _paths(data) for part in path), message
