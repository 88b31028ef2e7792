"""The student-method registry (condi.methods) is the one list of methods: the params schema,
the pipeline's timed students, the stage commands' help and the ranking scores read it."""

import copy

import numpy as np
import pytest

from condi import methods, pipeline
from condi.cli import build_parser
from condi.config import ConfigError, load_schema, validate
from condi.scores import ranking_score, student_clip_scores
from tests.conftest import REPO, load_yaml

BASE = load_yaml(REPO / "params.yaml")


def test_the_schema_allows_exactly_the_registered_methods():
    schema = load_schema()
    assert schema["$defs"]["method"]["enum"] == list(methods.METHODS)
    p = copy.deepcopy(BASE)
    p["methods"] = list(methods.METHODS)
    validate(p)
    p["methods"] = ["condi_sr", "magic"]
    with pytest.raises(ConfigError, match=r"methods\.1"):
        validate(p)


def test_the_ablation_takes_registered_methods_but_not_condi_sr():
    for bad in (["magic"], ["condi_sr"]):
        p = copy.deepcopy(BASE)
        p["ablation"] = {"methods": bad}
        with pytest.raises(ConfigError, match=r"ablation\.methods\.0"):
            validate(p)


def test_timed_students_come_from_the_registry():
    timed = tuple(m.name for m in methods.METHOD_REGISTRY.values() if m.timed)
    assert pipeline.TIMING_METHODS == methods.TIMED_METHODS == timed


def test_every_ranking_is_a_score_a_student_offers():
    rng = np.random.default_rng(0)
    logits, conf = rng.normal(size=(6, 4)), rng.normal(size=6)
    offered = student_clip_scores(logits, conf)
    for name, m in methods.METHOD_REGISTRY.items():
        assert m.ranking in offered, name
        assert m.label and m.description, name
        np.testing.assert_array_equal(ranking_score(name, logits, conf), offered[m.ranking])


def test_unknown_and_duplicate_methods_are_refused():
    with pytest.raises(ValueError, match="unknown method 'magic'.*condi_sr"):
        methods.get_method("magic")
    with pytest.raises(ValueError, match="already registered"):
        methods.register(
            "condi_sr",
            ranking="z_tilde",
            trains_confidence=True,
            timed=True,
            label="x",
            description="x",
        )


def test_the_method_option_lists_the_registry():
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    student = sub._subparsers._group_actions[0].choices["student"]
    (action,) = [a for a in student._actions if a.dest == "method"]
    assert all(m in action.help for m in methods.METHODS)
