import pytest

from orca_devstack.emulators.kube.patching import (
    PatchError,
    PatchTestFailedError,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
)

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "main", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "envoy:1"},
        ],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"},
        ]
    },
}


def test_merge_patch_sets_and_removes_keys_and_replaces_lists() -> None:
    result = json_merge_patch(
        POD, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"containers": []}}
    )
    assert result["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert result["spec"]["containers"] == []
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_json_patch_operations() -> None:
    result = json_patch(
        POD,
        [
            {"op": "add", "path": "/metadata/labels/c", "value": "3"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:2"},
            {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "t2"}},
            {"op": "copy", "from": "/metadata/labels/b", "path": "/metadata/labels/d"},
            {"op": "move", "from": "/metadata/labels/c", "path": "/metadata/labels/e"},
            {"op": "test", "path": "/metadata/name", "value": "p"},
            {"op": "add", "path": "/metadata/labels/x~1y", "value": "slash"},
        ],
    )
    assert result["metadata"]["labels"] == {"b": "2", "d": "2", "e": "3", "x/y": "slash"}
    assert result["spec"]["containers"][0]["image"] == "busybox:2"
    assert [t["key"] for t in result["spec"]["tolerations"]] == ["t1", "t2"]


def test_json_patch_failures() -> None:
    with pytest.raises(PatchTestFailedError):
        json_patch(POD, [{"op": "test", "path": "/metadata/name", "value": "other"}])
    with pytest.raises(PatchError):
        json_patch(POD, [{"op": "remove", "path": "/metadata/nope"}])
    with pytest.raises(PatchError):
        json_patch(POD, [{"op": "replace", "path": "/spec/missing/x", "value": 1}])


def test_strategic_merge_by_key() -> None:
    result = strategic_merge_patch(
        POD,
        {
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox:2", "env": [{"name": "B", "value": "2"}]},
                    {"name": "new", "image": "x"},
                ]
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    containers = {c["name"]: c for c in result["spec"]["containers"]}
    assert list(containers) == ["main", "side", "new"]
    assert containers["main"]["image"] == "busybox:2"
    assert containers["main"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_strategic_merge_replaces_lists_without_strategy() -> None:
    result = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "t2"}]}})
    assert result["spec"]["tolerations"] == [{"key": "t2"}]


def test_strategic_merge_directives() -> None:
    result = strategic_merge_patch(
        POD,
        {
            "metadata": {
                "finalizers": ["y"],
                "labels": {"$patch": "replace", "only": "this"},
            },
            "spec": {
                "containers": [{"name": "side", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "main"}],
            },
        },
    )
    assert result["metadata"]["finalizers"] == ["x", "y"]
    assert result["metadata"]["labels"] == {"only": "this"}
    assert [c["name"] for c in result["spec"]["containers"]] == ["main"]

    removed = strategic_merge_patch(
        POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    )
    assert removed["metadata"]["finalizers"] == []

    replaced = strategic_merge_patch(
        POD, {"status": {"conditions": [{"$patch": "replace"}, {"type": "Only", "status": "True"}]}}
    )
    assert replaced["status"]["conditions"] == [{"type": "Only", "status": "True"}]

    nulled = strategic_merge_patch(POD, {"metadata": {"labels": {"a": None}}, "status": None})
    assert nulled["metadata"]["labels"] == {"b": "2"}
    assert "status" not in nulled


def test_strategic_merge_requires_merge_key() -> None:
    with pytest.raises(PatchError, match="merge key"):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "nameless"}]}})
