from orca_devstack.emulators.kube.admission import (
    default_image_pull_policy,
    default_pod_spec,
    pod_qos_class,
    pod_spec_update_forbidden,
    validate,
    validate_status,
)
from orca_devstack.emulators.kube.registry import PODS


def test_image_pull_policy() -> None:
    assert default_image_pull_policy("busybox") == "Always"
    assert default_image_pull_policy("busybox:latest") == "Always"
    assert default_image_pull_policy("busybox:1.36") == "IfNotPresent"
    assert default_image_pull_policy("registry:5000/busybox") == "Always"
    assert default_image_pull_policy("busybox@sha256:abc") == "IfNotPresent"


def test_pod_defaults_and_qos() -> None:
    spec = {
        "containers": [
            {"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
        ]
    }
    default_pod_spec(spec)
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    container = spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert pod_qos_class(spec) == "Guaranteed"
    assert pod_qos_class({"containers": [{"name": "c"}]}) == "BestEffort"
    assert pod_qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}) == "Burstable"


def test_pod_validation_causes() -> None:
    causes = dict(validate(PODS, {"metadata": {"name": "Bad_Name"}, "spec": {"containers": []}}))
    assert "metadata.name" in causes
    assert causes["spec.containers"] == "Required value"
    duplicate = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c"}]},
    }
    assert dict(validate(PODS, duplicate)) == {
        "spec.containers[1].name": "Duplicate value: 'c'",
        "spec.containers[1].image": "Required value",
    }


def test_pod_status_addresses_must_be_ip_addresses() -> None:
    """As ValidatePodStatusUpdate: a status write with an address that is no IP is refused."""
    good = {"status": {"podIP": "10.0.0.7", "hostIP": "10.0.0.7", "podIPs": [{"ip": "fd00::7"}]}}
    assert validate_status(PODS, good) == []
    bad = {"status": {"podIP": "ten", "hostIPs": [{"ip": "10.0.0.7"}, {"ip": "10.0.0"}]}}
    assert dict(validate_status(PODS, bad)) == {
        "status.podIP": "Invalid value: 'ten': must be a valid IP address",
        "status.hostIPs[1].ip": "Invalid value: '10.0.0': must be a valid IP address",
    }


def test_pod_spec_immutability() -> None:
    old = {"containers": [{"name": "c", "image": "x:1"}], "tolerations": [{"key": "a"}]}
    assert not pod_spec_update_forbidden(
        old,
        {
            "containers": [{"name": "c", "image": "x:2"}],
            "tolerations": [{"key": "a"}, {"key": "b"}],
        },
    )
    assert pod_spec_update_forbidden(
        old, {"containers": [{"name": "d", "image": "x:1"}], "tolerations": [{"key": "a"}]}
    )
    assert pod_spec_update_forbidden(old, {**old, "nodeName": "n"})
