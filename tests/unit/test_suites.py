"""Suites as data: YAML loading with include, validation, the procedural shapes generator."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from adabench.data import synthetic
from adabench.data.suites import get_spec, list_suites, load_suite, parse_spec, validate_all
from adabench.errors import UserError
from adabench.registry import Registry


def test_registry_lazy_import_and_did_you_mean():
    reg: Registry = Registry("thing")
    reg.register("json-dumps", "json:dumps")

    @reg.register("double")
    def double(x):
        return 2 * x

    assert reg.get("double")(2) == 4
    assert reg.get("json-dumps")([1]) == "[1]"
    with pytest.raises(UserError, match="Did you mean 'double'"):
        reg.get("doubel")


def test_shapes_is_listed_and_validates():
    assert "shapes" in list_suites()
    rows = {r["suite"]: r for r in validate_all()}
    assert rows["shapes"]["ok"], rows["shapes"]


def test_unknown_suite_suggests():
    with pytest.raises(UserError, match="Did you mean 'shapes'"):
        get_spec("shapez")


def test_include_merges_shared_parts(tmp_path):
    (tmp_path / "_common.yaml").write_text(
        "metric: exact_match\nmax_new_tokens: 3\nprompt: 'Q: {question}'\n"
    )
    (tmp_path / "mine.yaml").write_text(
        "include: [_common.yaml]\nname: mine\nsource: {type: procedural}\nsplits: {test: 5}\nmax_new_tokens: 7\n"
    )
    spec = parse_spec(tmp_path / "mine.yaml")
    assert (
        spec.metric == "exact_match" and spec.max_new_tokens == 7 and spec.prompt == "Q: {question}"
    )


def test_missing_key_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: bad\nsource: {type: procedural}\n")
    with pytest.raises(UserError, match="missing required key"):
        parse_spec(tmp_path / "bad.yaml")


def test_load_is_deterministic_and_differs_from_train():
    a = load_suite("shapes", split="test", limit=40)
    b = load_suite("shapes", split="test", limit=40)
    assert [(s.question, s.answers) for s in a] == [(s.question, s.answers) for s in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    train = load_suite("shapes", split="train", limit=40)
    assert {(s.meta["scene"], s.question) for s in a}.isdisjoint(
        {(s.meta["scene"], s.question) for s in train}
    )


def test_splits_are_disjoint_by_construction():
    keys = {}
    for split in ("train", "val", "test"):
        items = synthetic.generate(split, 600)
        keys[split] = {(it.scene.key(), it.question) for it in items}
        assert all(synthetic.split_of(it.scene, it.question) == split for it in items)
    assert keys["train"].isdisjoint(keys["val"]) and keys["train"].isdisjoint(keys["test"])
    assert keys["val"].isdisjoint(keys["test"])


def test_every_family_appears_with_sane_answers():
    items = synthetic.generate("test", 200)
    fams = {it.family for it in items}
    assert fams == set(synthetic.FAMILIES)
    for it in items:
        if it.family in ("spatial", "exist"):
            assert it.answers[0] in ("yes", "no")
        if it.family == "choice":
            assert it.answers[0] in "ABCD"
        if it.family == "count":
            assert it.answers[0] in synthetic.NUMBER_WORDS
    pope = {it.meta.get("pope_split") for it in items if it.family == "exist"}
    assert {"positive", "random", "popular", "adversarial"} <= pope


def test_limit_and_split_errors():
    with pytest.raises(UserError, match="limit must be >= 1"):
        load_suite("shapes", limit=0)
    with pytest.raises(UserError, match="split"):
        load_suite("shapes", split="tset")


USER_SUITE = """name: mypope
source: {{type: hf, path: me/mypope, data_dir: {data}}}
splits: {{test: {{split: test, size: 4}}}}
fields: {{id: question_id, image: image, question: {question}, answers: answer,
         answer_format: single}}
prompt: "USER: <image>\\n{{question}} ASSISTANT:"
metric: yes_no
max_new_tokens: 4
"""


def _user_suite(tmp_path, monkeypatch, question="question"):
    """A user suite `mypope` whose own data (a copy of the POPE fixture) lives under tmp_path."""

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "suites" / "lmms-lab" / "POPE"
    shutil.copytree(fixture / "default", tmp_path / "data" / "me" / "mypope" / "default")
    suites = tmp_path / "suites"
    suites.mkdir()
    text = USER_SUITE.format(data=tmp_path / "data", question=question)
    (suites / "mypope.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("ADABENCH_SUITES_DIR", str(suites))


def test_user_suite_is_validated_against_its_own_data(tmp_path, monkeypatch):
    """`suites validate` reads the data where `eval` does (source.data_dir), not test fixtures."""
    _user_suite(tmp_path, monkeypatch)
    row = {r["suite"]: r for r in validate_all()}["mypope"]
    assert row["ok"], row
    assert row["data"] == str(tmp_path / "data")
    assert len(load_suite("mypope", limit=2)) == 2  # what eval would read


def test_user_suite_with_a_wrong_column_fails_naming_it(tmp_path, monkeypatch):
    _user_suite(tmp_path, monkeypatch, question="questoin")
    row = {r["suite"]: r for r in validate_all()}["mypope"]
    assert not row["ok"] and "questoin" in row["problem"]
