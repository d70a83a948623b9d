"""A Kubernetes API server emulator for `orca dev` and the tests, served over real HTTP.

The official `kubernetes` Python client and kubectl 1.32 work against it unmodified. It covers the
part of the API ORCA and kubectl use: core/v1 pods (subresources status, binding, eviction, log),
nodes (status), namespaces (status), events, secrets, configmaps, services, serviceaccounts;
core/v1 persistentvolumes and persistentvolumeclaims (status); storage.k8s.io/v1 storageclasses;
apps/v1 statefulsets (status, scale); coordination.k8s.io/v1 leases; events.k8s.io/v1 events;
authentication.k8s.io/v1 TokenReview and authorization.k8s.io/v1 SubjectAccessReview (create
only, `access`). A minimal scheduler binds pending pods (with kube-scheduler's VolumeBinding);
kube-controller-manager's PersistentVolume binder, the pvc/pv protection controllers and the
StatefulSet controller run as background loops.
The conformance suite in tests/conformance runs the same checks against a real k3s where Docker
exists.

Modules: `store` (objects, global resourceVersion, event log), `registry` (API semantics),
`access` (the cluster CA, static tokens, the reviews' authenticator and authorizer),
`admission` (defaults, validation), `selectors`, `patching`, `quantity`, `scheduler`,
`node_lifecycle` (node health, condition taints, taint-based eviction), `storage_validation`
(storage and StatefulSet defaults, validation, immutability), `control_loop` (the controllers'
background loop), `volume_binder` (PV binder, protection controllers), `stateful_sets`
(StatefulSet controller and its cascading deletion), `tables`
(server-side printing for kubectl), `protobuf` (protobuf request bodies), `openapi` (OpenAPI v3 and
field validation), `server` (HTTP), `emulator` (`KubeEmulator`).

Known differences from a real API server:

* Plain HTTP only, no TLS; requests to the API itself are not authenticated or authorized (any
  token is accepted), no RBAC objects, no admission webhooks, no audit, no API priority and
  fairness. What delegating servers (a kubelet) ask is answered honestly, though: TokenReview
  authenticates only the static tokens (the kubeconfig's `orca-dev-emulator`, user `orca-dev` in
  `system:masters`, and those `KubeEmulator.add_token` adds); SubjectAccessReview applies a fixed
  policy (`system:masters` may do anything, user `kube-apiserver-kubelet-client` has
  `system:kubelet-api-admin`, everyone else is denied; see `access`). The cluster's client CA is
  made at start and published in ConfigMap kube-system/extension-apiserver-authentication (key
  `client-ca-file`); `KubeEmulator.issue_client_certificate` signs client certificates with it.
* Responses are JSON only (protobuf Accept headers get JSON). Request bodies may be JSON, YAML,
  or protobuf for the kinds kubectl's generators send so (`kubectl create namespace|secret|
  configmap|serviceaccount|service|pdb`, see `protobuf`); other protobuf kinds and CBOR get 415.
  Server-side apply (`application/apply-patch+yaml`) merges the applied configuration, removes
  map fields the same manager no longer applies, and reports conflicts (409, or ownership moves
  with `force`) between apply managers only: fields written by create, update or patch have no
  owner, and no managedFields are returned. `dryRun=All` is honoured on create, update, patch,
  apply and delete. OpenAPI v3 (`openapi`, generated from the Python client's
  models) for the served kinds drives kubectl's validation and `kubectl explain`; `fieldValidation`
  is honoured (unknown fields only: duplicate fields and type errors are not checked). No OpenAPI
  v2 (kubectl 1.32 does not need it) and no aggregated discovery (the legacy discovery documents
  are served and kubectl falls back to them). No ephemeral containers (`kubectl debug` says they
  are disabled).
* Every namespace gets a `default` ServiceAccount at once (and again when it is deleted), as the
  serviceaccount controller would make it; no token Secrets and no `kube-root-ca.crt` ConfigMap.
  As the ServiceAccount admission plugin, pod creation is refused (403) when the pod's service
  account does not exist.
* Strategic merge patch knows only these merge keys: spec.containers, spec.initContainers,
  spec.ephemeralContainers, spec.volumes, spec.imagePullSecrets (name); spec.hostAliases (ip);
  Service spec.ports (port); container ports (containerPort); env (name); volumeMounts
  (mountPath); volumeDevices (devicePath); status.conditions (type); status.addresses (type);
  metadata.ownerReferences (uid); metadata.finalizers merges as a set. Every other list
  (tolerations, taints, containerStatuses, ...) is replaced, as for lists without a patch strategy.
  Directives: `$patch: replace|delete`, `$deleteFromPrimitiveList`; `$setElementOrder` and
  `$retainKeys` are ignored. Container ports merge by containerPort only, not (port, protocol).
* A list is always served from the latest state: `resourceVersion`/`resourceVersionMatch` on a
  list are ignored, and `continue` pages come from the current state (the token keeps the first
  page's resourceVersion, and expires with it as on a real server).
* Watch: bookmarks every 60 s by default (configurable) and one at the end of a stream that
  ends by `timeoutSeconds`; no `sendInitialEvents`. A watch with a Table Accept header streams
  one-row Tables (with the column definitions in every event). A watch from a resourceVersion
  newer than the current one waits for it instead of failing. The retained window counts events
  (`retained_events`), not time.
* Field selectors: the real per-resource sets of supported fields, each matched as the string
  value of a dotted path (e.g. `source` on events is not mapped to `source.component`).
* Defaults: only those kubectl displays (restartPolicy, terminationGracePeriodSeconds, dnsPolicy,
  schedulerName, securityContext, enableServiceLinks, priority, preemptionPolicy,
  serviceAccountName, the not-ready/unreachable NoExecute tolerations, terminationMessagePath/
  Policy, imagePullPolicy, requests from limits, port protocol, qosClass); no service-account
  token volume, no LimitRange, no ResourceQuota. `metadata.generation` is set on every object
  with a spec (a 1.32 server does not set it on pods) and bumped on spec changes and graceful
  deletion. Validation covers names, labels/annotations, containers (name, image, duplicates,
  quantities) and pod spec immutability; not the full Kubernetes validation.
* Deletion: pods bound to a node are deleted gracefully (deletionTimestamp, kept until a delete with
  grace period 0); other objects go at once unless they carry finalizers. propagationPolicy is
  ignored: there is no garbage collector for ownerReferences, except that the StatefulSet
  controller deletes the pods (and `whenDeleted: Delete` claims) of a StatefulSet that is gone.
  Claims and volumes get the `kubernetes.io/pvc-protection` / `pv-protection` finalizers.
  Deleting a namespace removes its content and itself at once (no Terminating phase);
  default, kube-system and kube-public cannot be deleted. Eviction ignores
  PodDisruptionBudgets. A DELETE on a collection (label and field selectors) deletes each
  selected object as a DELETE on it would (not on namespaces: 405).
* core/v1 and events.k8s.io/v1 events are stored separately, not as two views of one object.
* Services get no cluster IP, endpoints or load balancer.
* Node lifecycle (`node_lifecycle`): lease-based node health (Unknown after
  `--node-monitor-grace-period`), the not-ready/unreachable NoExecute and NoSchedule taints and the
  condition taints, taint-based eviction honouring tolerationSeconds (DisruptionTarget condition,
  event, graceful delete). No rate-limited zone eviction, no node deletion for cloud providers,
  no `nodeStartupGracePeriod` (a new node gets the same grace period), and the eviction timer runs
  on the monitor period, not a timer per pod.
* Scheduler: filters only (unschedulable, taints with NoSchedule/NoExecute incl. an implied
  not-ready taint on nodes without Ready=True, nodeSelector, required node affinity incl.
  matchFields metadata.name, resources cpu/memory/pods/any extended resource, VolumeBinding:
  missing, deleted and unbound Immediate claims, volume node affinity, WaitForFirstConsumer
  claims annotated `volume.kubernetes.io/selected-node` and the pod bound once they are Bound);
  scoring is "fewest pods, then name"; no preemption, pod (anti-)affinity, topology spread,
  ports, volume limits or StorageClass allowedTopologies; the
  Unschedulable message omits the "preemption: ..." suffix; one FailedScheduling event per change
  of message instead of repeated events with back-off.
* Storage: the PV binder binds pre-bound and matching static volumes, annotates claims for an
  external provisioner and never provisions, deletes or recycles (no in-tree volume plugins: a
  `Delete` volume is left `Released` for its provisioner); no volume expansion, no
  VolumeAttributesClass, no retroactive default class. StatefulSets: no ControllerRevisions, no
  `maxUnavailable`, no `ordinals.start`, `minReadySeconds` ignored.
* Pod logs are proxied to `https://<InternalIP>:<kubeletEndpoint.Port>/containerLogs/...`
  (HTTPS only, the kubelet's serving certificate not verified, as without
  `--kubelet-certificate-authority`), presenting a client certificate for
  `kube-apiserver-kubelet-client` signed by the cluster CA (`--kubelet-client-certificate`).
* Table printing (kubectl get): the real printers' columns for pods, nodes, namespaces, core/v1
  events, secrets, configmaps, serviceaccounts, services, poddisruptionbudgets and leases;
  events.k8s.io/v1 events print Name and Created At.
"""

from orca_devstack.emulators.kube.emulator import KubeEmulator

__all__ = ["KubeEmulator"]
