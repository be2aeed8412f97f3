"""Deeply nested JSON at every boundary that decodes it: a decoding error, never a
RecursionError (a traceback in ``multinic cni``, code 999 from a plugin)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multinic.cni import jsontext, skel
from multinic.cni.cache import CachedAttachment, cached_result
from multinic.cni.conffiles import load_all, load_network
from multinic.cni.errors import ErrorCode
from multinic.plugins import registry

GOOD = {"cniVersion": "1.0.0", "name": "good", "plugins": [{"type": "loopback"}]}


def nested(depth: int, kind: str = "[]") -> str:
    """``depth`` levels of arrays (``[]``), objects (``{}``) or both in turn (``mixed``)."""
    text = "1"
    for level in range(depth):
        array = kind == "[]" or (kind == "mixed" and level % 2)
        text = f"[{text}]" if array else f'{{"k": {text}}}'
    return text


@given(st.integers(min_value=0, max_value=200), st.sampled_from(["[]", "{}", "mixed"]))
def test_nesting_depth_and_the_limit(depth: int, kind: str) -> None:
    text = nested(depth, kind)
    assert jsontext.nesting_depth(json.loads(text)) == depth
    if depth <= jsontext.MAX_DEPTH:
        assert jsontext.loads(text) == json.loads(text)
    else:
        with pytest.raises(ValueError, match="nested deeper than 64"):
            jsontext.loads(text)


@pytest.mark.parametrize("depth", [65, 900, 5_000, 200_000])
def test_far_too_deep_is_a_value_error_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        jsontext.loads(nested(depth))


@pytest.mark.parametrize("plugin_type", sorted(registry.PLUGINS))
@pytest.mark.parametrize(("depth", "where"), [(65, "top"), (990, "ipam"), (100_000, "prevResult")])
def test_a_plugin_answers_code_6_for_a_deep_config(
    plugin_type: str, depth: int, where: str
) -> None:
    head = {"cniVersion": "1.0.0", "name": "n", "type": plugin_type}
    stdin = (json.dumps(head)[:-1] + f', "{where}": {nested(depth)}}}').encode()
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c",
        "CNI_NETNS": "/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/x",
    }
    status, out = skel.run(registry.load_plugin(plugin_type), env, stdin)
    assert status == 1
    error = json.loads(out)
    assert error["code"] == ErrorCode.DECODING_FAILURE, error
    assert "nested deeper than 64 levels" in error["details"]


BROKEN = st.sampled_from(
    [
        nested(100_000),
        nested(70, "{}"),
        '{"name": "deep", "cniVersion": "1.0.0", "plugins": [' + nested(3000) + "]}",
        '{"name": "deep", "cniVersion": "1.0.0", "plugins": [{"type": "x", "a": '
        + nested(65, "mixed")
        + "}]}",
    ]
) | st.binary(max_size=64).map(lambda b: b.decode("latin-1"))


@settings(max_examples=40, deadline=None)
@given(st.lists(BROKEN, min_size=1, max_size=3), st.sampled_from([".conflist", ".conf"]))
def test_broken_unrelated_files_never_hide_a_good_network(
    tmp_path_factory: pytest.TempPathFactory, broken: list[str], suffix: str
) -> None:
    conf_dir = tmp_path_factory.mktemp("net.d")
    (conf_dir / "50-good.conflist").write_text(json.dumps(GOOD))
    for n, text in enumerate(broken):
        (conf_dir / f"{n:02d}-broken{suffix}").write_bytes(text.encode("latin-1", "replace"))
    assert load_network(conf_dir, "good").name == "good"
    networks, problems = load_all(conf_dir)
    assert [net.name for net in networks] == ["good"] or len(problems) < len(broken)


def test_a_deep_cache_file_reads_as_unreadable(tmp_path: Path) -> None:
    deep = nested(10_000).encode()
    assert CachedAttachment.from_json(deep) is None
    assert cached_result(deep, "1.0.0") is None
