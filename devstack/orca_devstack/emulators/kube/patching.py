"""The three PATCH flavours the API server accepts, as pure functions on JSON documents.

* JSON merge patch (RFC 7386), `application/merge-patch+json`.
* JSON patch (RFC 6902), `application/json-patch+json`.
* Strategic merge patch, `application/strategic-merge-patch+json`: a merge patch in which some
  lists are merged by a key instead of replaced. Only the merge keys in `MERGE_KEYS` are known;
  every other list is replaced, as for a list without a patch strategy. Directives supported:
  `$patch: replace` and `$patch: delete` on maps and list elements,
  `$deleteFromPrimitiveList/<field>`; the ordering directives `$setElementOrder/<field>` and
  `$retainKeys` are accepted and ignored.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied; the server answers 422 (or 409 for a failed JSON patch test)."""


class PatchTestFailedError(PatchError):
    """A JSON patch `test` operation did not hold."""


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; returns a new document."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _resolve_parent(document: Any, tokens: list[str], pointer: str) -> Any:
    current = document
    for token in tokens[:-1]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            raise PatchError(f"doc is missing path: {pointer!r}")
    return current


def _get(document: Any, pointer: str) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return document
    parent = _resolve_parent(document, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"doc is missing path: {pointer!r}")


def _remove(document: Any, pointer: str) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve_parent(document, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"unable to remove nonexistent key: {pointer!r}")


def _add(document: Any, pointer: str, value: Any, *, replace: bool) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent = _resolve_parent(document, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {pointer!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(f"index out of range in {pointer!r}")
    else:
        raise PatchError(f"doc is missing path: {pointer!r}")
    return document


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch; returns a new document."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            document = _add(document, path, copy.deepcopy(operation.get("value")), replace=False)
        elif op == "replace":
            document = _add(document, path, copy.deepcopy(operation.get("value")), replace=True)
        elif op == "remove":
            _remove(document, path)
        elif op == "move":
            value = _remove(document, operation["from"])
            document = _add(document, path, value, replace=False)
        elif op == "copy":
            value = copy.deepcopy(_get(document, operation["from"]))
            document = _add(document, path, value, replace=False)
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise PatchTestFailedError(f"testing value {path} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return document


# List fields merged by key in a strategic merge patch, keyed by the path of field names leading to
# them (list indices skipped). The last path element alone is the fallback.
MERGE_KEYS: dict[tuple[str, ...], str] = {
    ("spec", "containers"): "name",
    ("spec", "initContainers"): "name",
    ("spec", "ephemeralContainers"): "name",
    ("spec", "volumes"): "name",
    ("spec", "imagePullSecrets"): "name",
    ("spec", "hostAliases"): "ip",
    ("spec", "ports"): "port",
    ("env",): "name",
    ("volumeMounts",): "mountPath",
    ("volumeDevices",): "devicePath",
    ("containers", "ports"): "containerPort",
    ("initContainers", "ports"): "containerPort",
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
    ("metadata", "ownerReferences"): "uid",
}
# Lists of scalars merged as sets ("patchStrategy: merge" without a key).
PRIMITIVE_MERGE_LISTS: frozenset[tuple[str, ...]] = frozenset({("metadata", "finalizers")})


def merge_key_for(path: tuple[str, ...]) -> str | None:
    for length in (2, 1):
        if len(path) >= length and path[-length:] in MERGE_KEYS:
            return MERGE_KEYS[path[-length:]]
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to a Kubernetes object; returns a new document."""
    return _merge_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, ())


def _merge_map(original: dict[str, Any], patch: Any, path: tuple[str, ...]) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise PatchError(f"unknown patch type: {directive}")
    result = original
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            removed = set(map(repr, value or []))
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if repr(item) not in removed]
            continue
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if value is None:
            result.pop(key, None)
            continue
        child_path = (*path, key)
        current = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, child_path)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(
                current if isinstance(current, list) else [], value, child_path
            )
        else:
            result[key] = value
    return result


def _merge_list(original: list[Any], patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            copy.deepcopy(item)
            for item in patch
            if not (isinstance(item, dict) and "$patch" in item)
        ]
    if path[-2:] in PRIMITIVE_MERGE_LISTS:
        merged = list(original)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return merged
    key = merge_key_for(path)
    if key is None:
        return [copy.deepcopy(item) for item in patch]
    merged = list(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map: {item!r} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, dict) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
            continue
        if index is None:
            merged.append(_merge_map({}, item, path))
        else:
            merged[index] = _merge_map(merged[index], item, path)
    return merged
