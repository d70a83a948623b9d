"""API semantics on top of the store: what create, update, patch, delete, bind and evict mean.

The HTTP layer parses requests into calls here; the scheduler calls here too. All read-modify-write
sequences hold the store lock, so concurrent writers see resourceVersion conflicts exactly where a
real API server would report them.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orca_devstack.emulators.kube import admission, errors, openapi, patching
from orca_devstack.emulators.kube.selectors import (
    FieldRequirement,
    LabelRequirement,
    fields_match,
    labels_match,
)
from orca_devstack.emulators.kube.store import ALL_RESOURCES, JsonObject, ObjectStore, ResourceType

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_UNDELETABLE_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PatchType:
    JSON = "application/json-patch+json"
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


FIELD_VALIDATIONS = ("Ignore", "Warn", "Strict")


@dataclass
class WriteOptions:
    """A create, update or patch request's options; `warnings` collects the Warning headers."""

    dry_run: bool = False
    field_validation: str = "Warn"  # a real server's default when the request names none
    field_manager: str | None = None
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListResult:
    items: list[JsonObject]
    resource_version: int
    continue_token: str | None
    remaining: int | None


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    for resource in ALL_RESOURCES:
        if resource.group == group and resource.version == version and resource.plural == plural:
            return resource
    return None


def _resource(group: str, plural: str) -> ResourceType:
    for resource in ALL_RESOURCES:
        if resource.group == group and resource.plural == plural:
            return resource
    raise KeyError(plural)


PODS = _resource("", "pods")
NODES = _resource("", "nodes")
NAMESPACES = _resource("", "namespaces")
SERVICE_ACCOUNTS = _resource("", "serviceaccounts")
EVENTS = _resource("", "events")
LEASES = _resource("coordination.k8s.io", "leases")
STORAGE_CLASSES = _resource("storage.k8s.io", "storageclasses")
PERSISTENT_VOLUMES = _resource("", "persistentvolumes")
PERSISTENT_VOLUME_CLAIMS = _resource("", "persistentvolumeclaims")
STATEFUL_SETS = _resource("apps", "statefulsets")


def _strip_resource_version(obj: JsonObject) -> JsonObject:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"rv": resource_version, "start": list(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise errors.bad_request(f"invalid continue token: {error}") from error


class Registry:
    """The resource semantics of one emulated API server."""

    def __init__(
        self,
        store: ObjectStore,
        clock: Callable[[], dt.datetime] = now,
        admission_config: admission.AdmissionConfig = admission.DEFAULT_ADMISSION,
    ) -> None:
        self.store = store
        self.clock = clock
        self.admission = admission_config
        # Server-side apply: the last configuration each field manager applied to an object,
        # keyed by (resource key, namespace, name, uid, manager).
        self._applied: dict[tuple[str, str, str, str, str], JsonObject] = {}
        for name in INITIAL_NAMESPACES:
            self.create(NAMESPACES, "", {"metadata": {"name": name}})

    # -- reads ---------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        obj = self.store.get(resource, namespace if resource.namespaced else "", name)
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        return obj

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: tuple[LabelRequirement, ...] = (),
        fields: tuple[FieldRequirement, ...] = (),
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        objects, resource_version = self.store.snapshot(
            resource, namespace if resource.namespaced else None
        )
        list_rv = resource_version
        if continue_token:
            token_rv, after = decode_continue(continue_token)
            try:
                self.store.check_retained(token_rv)
            except errors.ApiError as error:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                ) from error
            list_rv = token_rv
            objects = [o for o in objects if self._key(resource, o) > after]
        matching = [
            o
            for o in objects
            if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
        ]
        if limit and limit > 0 and len(matching) > limit:
            page = matching[:limit]
            token = encode_continue(list_rv, self._key(resource, page[-1]))
            return ListResult(page, list_rv, token, len(matching) - limit)
        return ListResult(matching, list_rv, None, None)

    @staticmethod
    def _key(resource: ResourceType, obj: JsonObject) -> tuple[str, str]:
        namespace = obj["metadata"].get("namespace", "") if resource.namespaced else ""
        return namespace, obj["metadata"]["name"]

    # -- create --------------------------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Any,
        options: WriteOptions | None = None,
    ) -> JsonObject:
        options = options or WriteOptions()
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        check_fields(resource, obj, options)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            metadata = obj["metadata"] = {}
        if resource.namespaced:
            if metadata.get("namespace") and namespace and metadata["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace or metadata.get("namespace") or "default"
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            metadata["name"] = f"{metadata['generateName']}{suffix}"
        for managed in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(managed, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = format_time(self.clock())
        if "spec" in obj or resource.key in ("/pods", "/nodes"):
            metadata["generation"] = 1
        admission.prepare_for_create(resource, obj, self.admission)
        causes = admission.validate(resource, obj) or admission.canonicalize_quantities(
            resource, obj
        )
        if causes:
            raise errors.invalid(
                resource.kind, str(metadata.get("name") or ""), causes, resource.group
            )
        with self.store.lock:
            if (
                resource.namespaced
                and self.store.get(NAMESPACES, "", metadata["namespace"]) is None
            ):
                raise errors.not_found("namespaces", metadata["namespace"])
            if resource.key == "/pods":
                self._check_service_account(obj)
            if resource.key == "/persistentvolumeclaims":
                self._default_storage_class(obj)
            admission.add_protection_finalizer(resource, obj)
            key_namespace = metadata["namespace"] if resource.namespaced else ""
            if self.store.get(resource, key_namespace, metadata["name"]) is not None:
                raise errors.already_exists(resource.plural, metadata["name"], resource.group)
            if options.dry_run:
                return obj
            created = self.store.write(resource, obj, event_type="ADDED")
            if resource.key == "/namespaces":
                self._ensure_default_service_account(metadata["name"])
            return created

    def _default_storage_class(self, claim: JsonObject) -> None:
        """The DefaultStorageClass admission plugin: a claim naming no class (not even "")
        gets the default one, the newest when several are marked default."""
        spec = claim.get("spec")
        annotations = claim["metadata"].get("annotations") or {}
        if (
            not isinstance(spec, dict)
            or spec.get("storageClassName") is not None
            or admission.BETA_STORAGE_CLASS_ANNOTATION in annotations
        ):
            return
        chosen = admission.default_storage_class(self.store.iter_objects(STORAGE_CLASSES))
        if chosen is not None:
            spec["storageClassName"] = chosen

    def _check_service_account(self, pod: JsonObject) -> None:
        """The ServiceAccount admission plugin: a pod's service account must exist."""
        metadata = pod["metadata"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if self.store.get(SERVICE_ACCOUNTS, metadata["namespace"], account) is None:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'pods "{metadata["name"]}" is forbidden: error looking up service account '
                f'{metadata["namespace"]}/{account}: serviceaccount "{account}" not found',
                {"name": metadata["name"], "kind": "pods"},
            )

    def _ensure_default_service_account(self, namespace: str) -> None:
        """As the serviceaccount controller: every namespace has a `default` ServiceAccount
        (created with the namespace, and again whenever it is deleted)."""
        with self.store.lock:
            namespace_obj = self.store.get(NAMESPACES, "", namespace)
            if namespace_obj is None or namespace_obj["metadata"].get("deletionTimestamp"):
                return
            if self.store.get(SERVICE_ACCOUNTS, namespace, "default") is None:
                self.create(SERVICE_ACCOUNTS, namespace, {"metadata": {"name": "default"}})

    # -- update --------------------------------------------------------------------------------

    def replace(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str | None = None,
        options: WriteOptions | None = None,
    ) -> JsonObject:
        options = options or WriteOptions()
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.bad_request("the request body must be a JSON object")
        body = copy.deepcopy(body)
        check_fields(resource, body, options)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        with self.store.lock:
            current = self.get(resource, namespace, name)
            return self._update(resource, current, body, subresource, options.dry_run)

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        subresource: str | None = None,
        options: WriteOptions | None = None,
    ) -> JsonObject:
        options = options or WriteOptions()
        with self.store.lock:
            current = self.get(resource, namespace, name)
            try:
                if patch_type == PatchType.JSON:
                    patched = patching.json_patch(current, patch)
                elif patch_type == PatchType.MERGE:
                    patched = patching.json_merge_patch(current, patch)
                elif patch_type == PatchType.STRATEGIC:
                    patched = patching.strategic_merge_patch(current, patch)
                else:
                    raise errors.unsupported_media_type(patch_type)
            except patching.PatchTestFailedError as error:
                raise errors.ApiError(422, "Invalid", str(error)) from error
            except patching.PatchError as error:
                raise errors.ApiError(422, "Invalid", str(error)) from error
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise errors.ApiError(422, "Invalid", "the patch removed the object's metadata")
            check_fields(resource, patched, options)
            return self._update(resource, current, patched, subresource, options.dry_run)

    def apply(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str | None = None,
    ) -> tuple[JsonObject, bool]:
        """Server-side apply (`application/apply-patch+yaml`); returns the object and whether it
        was created.

        The applied configuration is merged into the live object as a strategic merge patch, and
        the fields this manager applied last time but no longer does are removed (map fields;
        lists with a merge key keep their other items). A field another manager applied with a
        different value is a conflict (409) unless `force` is set, which moves the field to this
        manager. Ownership is tracked among apply managers only: fields written by create,
        update or patch belong to nobody and never conflict.
        """
        if not options.field_manager:
            raise errors.bad_request("fieldManager is required for apply requests")
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.bad_request("the apply configuration must be a YAML or JSON object")
        if body.get("apiVersion") != resource.api_version or body.get("kind") != resource.kind:
            raise errors.bad_request(
                f"the apply configuration is a {body.get('kind')!r} in "
                f"{body.get('apiVersion')!r}, not a {resource.kind} in {resource.api_version!r}"
            )
        body_name = (body.get("metadata") or {}).get("name")
        if body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        applied = copy.deepcopy(body)
        check_fields(resource, applied, options)
        with self.store.lock:
            key_namespace = namespace if resource.namespaced else ""
            current = self.store.get(resource, key_namespace, name)
            if current is None:
                if subresource is not None:
                    raise errors.not_found(resource.plural, name, resource.group)
                created = self.create(resource, namespace, applied, options)
                self._remember_applied(resource, created, options, applied)
                return created, True
            uid = current["metadata"]["uid"]
            key = (resource.key, key_namespace, name, uid, options.field_manager)
            self._resolve_conflicts(resource, key, applied, options)
            patch = _with_removals(self._applied.get(key, {}), applied)
            for managed in ("resourceVersion", "uid"):
                patch.get("metadata", {}).pop(managed, None)
            try:
                patched = patching.strategic_merge_patch(current, patch)
            except patching.PatchError as error:
                raise errors.ApiError(422, "Invalid", str(error)) from error
            updated = self._update(resource, current, patched, subresource, options.dry_run)
            self._remember_applied(resource, updated, options, applied)
            return updated, False

    def _resolve_conflicts(
        self,
        resource: ResourceType,
        key: tuple[str, str, str, str, str],
        applied: JsonObject,
        options: WriteOptions,
    ) -> None:
        mine = _leaves(applied)
        conflicts: dict[str, list[tuple[str | tuple[str, Any], ...]]] = {}
        for other, config in self._applied.items():
            if other[:4] != key[:4] or other[4] == key[4]:
                continue
            theirs = _leaves(config)
            for path, value in mine.items():
                if path in theirs and theirs[path] != value:
                    conflicts.setdefault(other[4], []).append(path)
        if not conflicts:
            return
        if options.force:
            if not options.dry_run:
                for manager, paths in conflicts.items():
                    config = self._applied[(*key[:4], manager)]
                    for path in paths:
                        _drop_path(config, path)
            return
        count = sum(len(paths) for paths in conflicts.values())
        if count == 1:
            manager, paths = next(iter(conflicts.items()))
            summary = f'conflict with "{manager}": {_format_path(paths[0])}'
        else:
            summary = "\n".join(
                f'conflicts with "{manager}":\n'
                + "\n".join(f"- {_format_path(path)}" for path in paths)
                for manager, paths in conflicts.items()
            )
        raise errors.ApiError(
            409,
            "Conflict",
            f"Apply failed with {count} conflict{'s' if count > 1 else ''}: {summary}",
            {
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": f'conflict with "{manager}"',
                        "field": _format_path(path),
                    }
                    for manager, paths in conflicts.items()
                    for path in paths
                ]
            },
        )

    def _remember_applied(
        self, resource: ResourceType, obj: JsonObject, options: WriteOptions, applied: JsonObject
    ) -> None:
        if options.dry_run or options.field_manager is None:
            return
        metadata = obj["metadata"]
        namespace = metadata.get("namespace", "") if resource.namespaced else ""
        key = (resource.key, namespace, metadata["name"], metadata["uid"], options.field_manager)
        self._applied[key] = applied

    def mutate(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        change: Callable[[JsonObject], None],
        subresource: str | None = None,
    ) -> JsonObject:
        """Read-modify-write for in-process callers (the scheduler): `change` edits a copy."""
        with self.store.lock:
            current = self.get(resource, namespace, name)
            candidate = copy.deepcopy(current)
            change(candidate)
            return self._update(resource, current, candidate, subresource)

    def _update(
        self,
        resource: ResourceType,
        current: JsonObject,
        new: JsonObject,
        subresource: str | None,
        dry_run: bool = False,
    ) -> JsonObject:
        name = current["metadata"]["name"]
        new_metadata = new.setdefault("metadata", {})
        if (
            new_metadata.get("resourceVersion")
            and new_metadata["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(resource.plural, name, resource.group)
        if new_metadata.get("uid") and new_metadata["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(
                resource.plural,
                name,
                resource.group,
                f"Precondition failed: UID in precondition: {new_metadata['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if subresource == "status":
            # Status writes change only status, whatever else the body says.
            candidate = copy.deepcopy(current)
            candidate["status"] = new.get("status", {})
            causes = admission.validate_status(
                resource, candidate
            ) or admission.canonicalize_quantities(resource, candidate)
            if causes:
                raise errors.invalid(resource.kind, name, causes, resource.group)
        else:
            candidate = new
            candidate["apiVersion"] = resource.api_version
            candidate["kind"] = resource.kind
            metadata = candidate["metadata"]
            for immutable in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if immutable in current["metadata"]:
                    metadata[immutable] = current["metadata"][immutable]
                else:
                    metadata.pop(immutable, None)
            if resource.has_status:
                candidate["status"] = copy.deepcopy(current.get("status", {}))
            admission.prepare_for_update(resource, candidate, self.admission)
            quantity_causes = admission.canonicalize_quantities(resource, candidate)
            if resource.key == "/pods" and admission.pod_spec_update_forbidden(
                current.get("spec", {}), candidate.get("spec", {})
            ):
                raise errors.invalid(
                    "Pod",
                    name,
                    [
                        (
                            "spec",
                            "Forbidden: pod updates may not change fields other than "
                            "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                            "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                            "existing tolerations), `spec.terminationGracePeriodSeconds`",
                        )
                    ],
                )
            update_causes = admission.validate_update(resource, current, candidate)
            if update_causes:
                raise errors.invalid(resource.kind, name, update_causes, resource.group)
            if "generation" in metadata and candidate.get("spec") != current.get("spec"):
                metadata["generation"] = int(metadata["generation"]) + 1
            causes = admission.validate(resource, candidate) or quantity_causes
            if causes:
                raise errors.invalid(resource.kind, name, causes, resource.group)
        candidate["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if candidate == current:
            return current  # a no-op write does not take a resourceVersion
        if dry_run:
            return candidate
        if (
            candidate["metadata"].get("deletionTimestamp")
            and not candidate["metadata"].get("finalizers")
            and self._deletion_due(resource, candidate)
        ):
            namespace = candidate["metadata"].get("namespace", "") if resource.namespaced else ""
            return self.store.remove(resource, namespace, name, final_state=candidate)
        return self.store.write(resource, candidate, event_type="MODIFIED")

    @staticmethod
    def _deletion_due(resource: ResourceType, obj: JsonObject) -> bool:
        """Removing the last finalizer ends a deletion, unless a kubelet owns a graceful one."""
        grace = obj["metadata"].get("deletionGracePeriodSeconds", 0)
        return not (resource.key == "/pods" and obj.get("spec", {}).get("nodeName") and grace)

    # -- delete --------------------------------------------------------------------------------

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        options: DeleteOptions | None = None,
    ) -> JsonObject:
        options = options or DeleteOptions()
        with self.store.lock:
            current = self.get(resource, namespace, name)
            metadata = current["metadata"]
            if options.precondition_uid and options.precondition_uid != metadata["uid"]:
                raise errors.conflict(
                    resource.plural,
                    name,
                    resource.group,
                    f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                    f"UID in object meta: {metadata['uid']}",
                )
            if (
                options.precondition_resource_version
                and options.precondition_resource_version != metadata["resourceVersion"]
            ):
                raise errors.conflict(
                    resource.plural,
                    name,
                    resource.group,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{options.precondition_resource_version}, ResourceVersion in object meta: "
                    f"{metadata['resourceVersion']}",
                )
            if resource.key == "/namespaces":
                return self._delete_namespace(current, options.dry_run)
            if options.dry_run:
                return current
            grace = self._grace_period(resource, current, options)
            key_namespace = metadata.get("namespace", "") if resource.namespaced else ""
            if grace > 0 or metadata.get("finalizers"):
                return self._mark_deleting(resource, current, grace)
            removed = self.store.remove(resource, key_namespace, name)
            if resource.key == "/serviceaccounts" and name == "default":
                self._ensure_default_service_account(key_namespace)
            return removed

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: tuple[LabelRequirement, ...],
        fields: tuple[FieldRequirement, ...],
        options: DeleteOptions,
    ) -> ListResult:
        """DELETE on a collection: delete each selected object as a DELETE on it would."""
        if resource.key == "/namespaces":
            raise errors.method_not_allowed()
        with self.store.lock:
            selected = self.list(resource, namespace, labels, fields)
            deleted = []
            for obj in selected.items:
                metadata = obj["metadata"]
                ns = metadata.get("namespace", "") if resource.namespaced else ""
                try:
                    deleted.append(self.delete(resource, ns, metadata["name"], options))
                except errors.ApiError as error:
                    if error.code != 404:
                        raise
            return ListResult(deleted, self.store.resource_version, None, None)

    def _grace_period(self, resource: ResourceType, pod: JsonObject, options: DeleteOptions) -> int:
        if resource.key != "/pods":
            return 0
        spec = pod.get("spec", {})
        if not spec.get("nodeName") or pod.get("status", {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            return 0  # nothing runs it: the API server deletes it at once
        if options.grace_period_seconds is not None:
            return max(options.grace_period_seconds, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _mark_deleting(self, resource: ResourceType, current: JsonObject, grace: int) -> JsonObject:
        metadata = current["metadata"]
        existing_grace = metadata.get("deletionGracePeriodSeconds")
        if metadata.get("deletionTimestamp") and (
            existing_grace is None or grace >= existing_grace
        ):
            if grace == 0 and not metadata.get("finalizers"):
                namespace = metadata.get("namespace", "") if resource.namespaced else ""
                return self.store.remove(resource, namespace, metadata["name"])
            return current  # already terminating; a longer grace period changes nothing
        if grace == 0 and not metadata.get("finalizers"):
            namespace = metadata.get("namespace", "") if resource.namespaced else ""
            return self.store.remove(resource, namespace, metadata["name"])
        candidate = copy.deepcopy(current)
        candidate["metadata"]["deletionTimestamp"] = format_time(
            self.clock() + dt.timedelta(seconds=grace)
        )
        candidate["metadata"]["deletionGracePeriodSeconds"] = grace
        if "generation" in candidate["metadata"]:
            candidate["metadata"]["generation"] = int(candidate["metadata"]["generation"]) + 1
        return self.store.write(resource, candidate, event_type="MODIFIED")

    def _delete_namespace(self, namespace_obj: JsonObject, dry_run: bool = False) -> JsonObject:
        name = namespace_obj["metadata"]["name"]
        if name in _UNDELETABLE_NAMESPACES:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        if dry_run:
            return namespace_obj
        # A real namespace goes through phase Terminating while its content is deleted; here the
        # content goes at once, with DELETED events, and then the namespace.
        for resource in ALL_RESOURCES:
            if not resource.namespaced:
                continue
            objects, _ = self.store.snapshot(resource, name)
            for obj in objects:
                self.store.remove(resource, name, obj["metadata"]["name"])
        return self.store.remove(NAMESPACES, "", name)

    # -- the scale subresource -----------------------------------------------------------------

    def get_scale(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        """`/scale` as autoscaling/v1 Scale, as a real server shows a StatefulSet's."""
        return scale_of(self.get(resource, namespace, name))

    def update_scale(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        change: Callable[[JsonObject], JsonObject],
        options: WriteOptions | None = None,
    ) -> JsonObject:
        """PUT or PATCH on `/scale`: `change` turns the current Scale into the new one."""
        options = options or WriteOptions()
        with self.store.lock:
            current = self.get(resource, namespace, name)
            scale = change(scale_of(current))
            if not isinstance(scale, dict):
                raise errors.bad_request("the request body must be a JSON object")
            wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(resource.plural, name, resource.group)
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid(
                    "Scale",
                    name,
                    [
                        (
                            "spec.replicas",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                    "autoscaling",
                )
            candidate = copy.deepcopy(current)
            candidate["spec"]["replicas"] = replicas
            updated = self._update(resource, current, candidate, None, options.dry_run)
            return scale_of(updated)

    # -- pod subresources ----------------------------------------------------------------------

    def bind(self, namespace: str, name: str, binding: Any) -> None:
        target = (binding or {}).get("target") or {}
        node_name = target.get("name")
        if not node_name:
            raise errors.invalid("Binding", name, [("target.name", "Required value")])
        with self.store.lock:
            pod = self.get(PODS, namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(
                    "pods", name, message="pod is being deleted, cannot be assigned to a host"
                )
            bound = pod.get("spec", {}).get("nodeName")
            if bound:
                raise errors.conflict(
                    "pods", name, message=f'pod {name} is already assigned to node "{bound}"'
                )
            candidate = copy.deepcopy(pod)
            candidate["spec"]["nodeName"] = node_name
            set_condition(candidate, "PodScheduled", "True", self.clock())
            self.store.write(PODS, candidate, event_type="MODIFIED")

    def evict(self, namespace: str, name: str, eviction: Any) -> None:
        options = (eviction or {}).get("deleteOptions") or {}
        preconditions = options.get("preconditions") or {}
        self.delete(
            PODS,
            namespace,
            name,
            DeleteOptions(
                grace_period_seconds=options.get("gracePeriodSeconds"),
                precondition_uid=preconditions.get("uid"),
                precondition_resource_version=preconditions.get("resourceVersion"),
            ),
        )

    # -- events --------------------------------------------------------------------------------

    def record_event(
        self,
        involved: JsonObject,
        resource: ResourceType,
        event_type: str,
        reason: str,
        message: str,
        component: str,
    ) -> JsonObject:
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        moment = self.clock()
        return self.create(
            EVENTS,
            namespace,
            {
                "metadata": {
                    "name": f"{metadata['name']}.{uuid.uuid4().hex[:16]}",
                    "namespace": namespace,
                },
                "involvedObject": {
                    "kind": resource.kind,
                    "namespace": metadata.get("namespace", ""),
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "apiVersion": resource.api_version,
                    "resourceVersion": metadata["resourceVersion"],
                },
                "reason": reason,
                "message": message,
                "source": {"component": component},
                "firstTimestamp": format_time(moment),
                "lastTimestamp": format_time(moment),
                "count": 1,
                "type": event_type,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": "",
            },
        )


def scale_of(obj: JsonObject) -> JsonObject:
    metadata = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    match_labels = selector.get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
        },
    }


def check_fields(resource: ResourceType, obj: JsonObject, options: WriteOptions) -> None:
    """Field validation as a real server does it: Strict refuses unknown fields (400), Warn drops
    them with a warning, Ignore drops them silently."""
    if options.field_validation == "Strict":
        unknown = openapi.unknown_fields(resource, obj)
        if unknown:
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise errors.bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                f"{resource.kind}: strict decoding error: {listed}"
            )
        return
    unknown = openapi.prune_unknown(resource, obj)
    if options.field_validation == "Warn":
        options.warnings.extend(f'unknown field "{path}"' for path in unknown)


def _with_removals(previous: Any, applied: Any) -> Any:
    """`applied` as a merge patch that also removes the map fields only `previous` had."""
    if not isinstance(previous, dict) or not isinstance(applied, dict):
        return copy.deepcopy(applied)
    patch: JsonObject = {key: None for key in previous if key not in applied}
    for key, value in applied.items():
        patch[key] = _with_removals(previous.get(key), value)
    return patch


_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
FieldPath = tuple[str | tuple[str, Any], ...]  # map keys, and (merge key, value) for list items


def _leaves(value: Any, path: FieldPath = (), names: tuple[str, ...] = ()) -> dict[FieldPath, Any]:
    """The fields an apply configuration sets: maps and keyed lists walked, the rest leaves."""
    if isinstance(value, dict) and value:
        out: dict[FieldPath, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, (*path, key), (*names, key)))
        return {p: v for p, v in out.items() if p not in _IDENTITY}
    merge_key = patching.merge_key_for(names) if isinstance(value, list) else None
    if (
        isinstance(value, list)
        and merge_key
        and all(isinstance(item, dict) and merge_key in item for item in value)
    ):
        out = {}
        for item in value:
            out.update(_leaves(item, (*path, (merge_key, item[merge_key])), names))
        return out
    return {path: value}


def _drop_path(config: Any, path: FieldPath) -> None:
    for position, step in enumerate(path):
        last = position == len(path) - 1
        if isinstance(step, tuple) and isinstance(config, list):
            match = next(
                (i for i in config if isinstance(i, dict) and i.get(step[0]) == step[1]), None
            )
            if match is None:
                return
            if last:
                config.remove(match)
                return
            config = match
        elif isinstance(step, str) and isinstance(config, dict) and step in config:
            if last:
                del config[step]
                return
            config = config[step]
        else:
            return


def _format_path(path: FieldPath) -> str:
    """As the API server names a field: `.spec.containers[name="main"].image`."""
    return "".join(
        f"[{step[0]}={json.dumps(step[1])}]" if isinstance(step, tuple) else f".{step}"
        for step in path
    )


def set_condition(
    obj: JsonObject,
    condition_type: str,
    status: str,
    moment: dt.datetime,
    reason: str | None = None,
    message: str | None = None,
) -> None:
    """Set a status condition in place, keeping lastTransitionTime when the status is unchanged."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    existing = next((c for c in conditions if c.get("type") == condition_type), None)
    condition: JsonObject = {"type": condition_type, "status": status, "lastProbeTime": None}
    condition["lastTransitionTime"] = (
        existing["lastTransitionTime"]
        if existing and existing.get("status") == status and existing.get("lastTransitionTime")
        else format_time(moment)
    )
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    if existing is None:
        conditions.append(condition)
    else:
        conditions[conditions.index(existing)] = condition
