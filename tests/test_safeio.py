"""Bounded YAML and JSON: alias bombs, deep nesting, oversized, binary and directory inputs are one-line
errors naming the file, quickly and without the memory they would otherwise take."""

import time

import pytest

from edgemm.compress.recipe import load_recipe
from edgemm.devices import DeviceProfileError, load_profile
from edgemm.safeio import MAX_BYTES, load_json, load_yaml, read_text

BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
stages: [*h]
"""


def test_an_alias_bomb_recipe_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb.yaml: refused: expands to \d+ values, more than 200000"):
        load_recipe(path)
    assert time.perf_counter() - t0 < 5  # measured: 37 s and 3.4 GB before, when it was expanded


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("stages: " + "[" * 3000 + "]" * 3000)
    with pytest.raises(ValueError, match="deep.yaml: refused: nested deeper than 64 levels"):
        load_recipe(path)
    with pytest.raises(ValueError, match="x.json: refused: nested deeper than 64 levels"):
        load_json("[" * 3000 + "]" * 3000, "x.json")


def test_files_that_are_not_yaml_text(tmp_path):
    with pytest.raises(ValueError, match="expected a recipe file, found a directory"):
        load_recipe(tmp_path)
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="model.bin: not a UTF-8 text file"):
        load_recipe(binary)
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_BYTES + 1))
    with pytest.raises(ValueError, match="is too large for a recipe"):
        load_recipe(big)
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        read_text(tmp_path / "missing.yaml", "recipe")
    with pytest.raises(ValueError, match="r.yaml: not valid YAML"):
        load_yaml("a: [1", "r.yaml")


def test_a_device_profile_is_bounded_too(tmp_path):
    path = tmp_path / "dev.yaml"
    path.write_text(BOMB)
    with pytest.raises(DeviceProfileError, match="refused: expands to"):
        load_profile(path)


def test_ordinary_documents_load_with_shared_anchors():
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}
    assert load_json('{"a": [1, {"b": 2}]}', "ok.json") == {"a": [1, {"b": 2}]}
