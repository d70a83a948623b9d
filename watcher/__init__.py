"""The watcher: ORCA's virtual kubelet. It connects Kubernetes (pods bound to the virtual node) and
EC2's interruption events to the `PodLifecycle` workflows in Temporal, keeps the virtual node and
its Lease alive, and serves the kubelet endpoint `kubectl logs` reaches. See `orca.watcher.main`."""
