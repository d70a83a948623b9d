"""Container state events → pod status, rule by rule (the kubelet's phase rules)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca.activities.status_mapping import (
    ContainerStateEvent,
    PodStatusView,
    back_off_event_message,
    containers_backing_off,
    go_duration,
    incarnation_events,
    pod_is_finished,
    pod_status_from_events,
    status_inputs,
    to_status_patch,
)
from orca.instance_contract import restart_back_off
from orca.launch_spec import pod_ref_from_pod
from orca.pod_phase import PodPhase
from tests.unit.pods import container, pod

UID = "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Timeline:
    """Builds events one second apart, as the instance script would emit them."""

    def __init__(self) -> None:
        self.events: list[ContainerStateEvent] = []

    def __call__(
        self,
        name: str,
        state: str,
        exit_code: int | None = None,
        *,
        init: bool = False,
        reason: str | None = None,
        back_off: float | None = None,
    ) -> Timeline:
        self.events.append(
            ContainerStateEvent.model_validate(
                {
                    "podUID": UID,
                    "container": name,
                    "init": init,
                    "state": state,
                    "reason": reason,
                    "exitCode": exit_code,
                    "backOffSeconds": back_off,
                    "at": (T0 + timedelta(seconds=len(self.events) + 1)).isoformat(),
                }
            )
        )
        return self


def two_containers(policy: str, *, init: bool = False) -> dict[str, Any]:
    return pod(
        restart_policy=policy,
        init_containers=[container("fetch", "amazon/aws-cli:2")] if init else None,
        containers=[container("trainer", "pytorch:2"), container("logger", "fluent-bit:3")],
    )


def status(manifest: dict[str, Any], events: Timeline) -> PodStatusView:
    return pod_status_from_events(
        manifest, events.events, host_ip="10.0.1.17", pod_ip="10.0.1.17", started_at=T0
    )


def by_name(view: PodStatusView) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (*view.container_statuses, *view.init_container_statuses)}


def test_event_parses_the_contract_json() -> None:
    line = (
        '{"podUID": "u-1", "container": "trainer", "init": false, "state": "terminated",'
        ' "reason": "OOMKilled", "exitCode": 137, "at": "2026-11-26T10:00:00Z"}'
    )
    event = ContainerStateEvent.model_validate_json(line)
    assert (event.pod_uid, event.exit_code, event.reason) == ("u-1", 137, "OOMKilled")
    assert event.at == datetime(2026, 11, 26, 10, tzinfo=UTC)


def test_no_events_is_pending_with_waiting_containers() -> None:
    view = status(two_containers("Never"), Timeline())
    assert view.phase is PodPhase.PENDING
    assert view.condition("PodScheduled").status == "True"  # type: ignore[union-attr]
    assert view.condition("Ready").status == "False"  # type: ignore[union-attr]
    assert all("waiting" in s["state"] for s in view.container_statuses)
    assert view.start_time == "2026-11-26T10:00:00Z"


def test_all_running_is_running_and_ready() -> None:
    events = Timeline()("trainer", "waiting", reason="PullingImage")("trainer", "running")(
        "logger", "running"
    )
    view = status(two_containers("Never"), events)
    assert view.phase is PodPhase.RUNNING
    ready = view.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.last_transition_time) == ("True", "2026-11-26T10:00:03Z")
    trainer = by_name(view)["trainer"]
    assert trainer["ready"] is True
    assert trainer["started"] is True
    assert trainer["state"] == {"running": {"startedAt": "2026-11-26T10:00:02Z"}}


def test_one_container_still_pulling_keeps_pod_pending() -> None:
    events = Timeline()("trainer", "running")("logger", "waiting", reason="PullingImage")
    view = status(two_containers("Never"), events)
    assert view.phase is PodPhase.PENDING
    assert by_name(view)["logger"]["state"] == {"waiting": {"reason": "PullingImage"}}
    assert view.condition("ContainersReady").message == "containers with unready status: [logger]"  # type: ignore[union-attr]


def test_never_all_exit_zero_succeeds() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 0)(
        "logger", "terminated", 0
    )
    view = status(two_containers("Never"), events)
    assert view.phase is PodPhase.SUCCEEDED
    assert pod_is_finished(view, "Never")
    terminated = by_name(view)["trainer"]["state"]["terminated"]
    assert terminated == {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2026-11-26T10:00:01Z",
        "finishedAt": "2026-11-26T10:00:03Z",
    }
    assert view.condition("Ready").reason == "PodCompleted"  # type: ignore[union-attr]
    assert view.exit_codes == {"trainer": 0, "logger": 0}


def test_never_any_non_zero_fails_once_all_terminated() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 3)
    running = status(two_containers("Never"), events)
    assert running.phase is PodPhase.RUNNING  # logger still runs
    assert not pod_is_finished(running, "Never")
    events("logger", "terminated", 0)
    view = status(two_containers("Never"), events)
    assert view.phase is PodPhase.FAILED
    assert pod_is_finished(view, "Never")
    assert view.message == "trainer exited with code 3 (Error)"
    assert view.exit_codes == {"trainer": 3, "logger": 0}


def test_oom_killed_reason_is_kept() -> None:
    events = Timeline()("trainer", "running")("logger", "running")(
        "trainer", "terminated", 137, reason="OOMKilled"
    )("logger", "terminated", 0)
    view = status(two_containers("Never"), events)
    assert by_name(view)["trainer"]["state"]["terminated"]["reason"] == "OOMKilled"
    assert view.phase is PodPhase.FAILED


def test_on_failure_restarts_count_and_success_ends_it() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 1)
    events("logger", "terminated", 0)
    restarting = status(two_containers("OnFailure"), events)
    assert restarting.phase is PodPhase.RUNNING  # trainer will be restarted
    assert not pod_is_finished(restarting, "OnFailure")
    events("trainer", "running")
    view = status(two_containers("OnFailure"), events)
    trainer = by_name(view)["trainer"]
    assert trainer["restartCount"] == 1
    assert trainer["lastState"]["terminated"]["exitCode"] == 1
    assert view.phase is PodPhase.RUNNING
    events("trainer", "terminated", 0)
    done = status(two_containers("OnFailure"), events)
    assert done.phase is PodPhase.SUCCEEDED
    assert pod_is_finished(done, "OnFailure")


def test_always_never_succeeds() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 0)(
        "logger", "terminated", 0
    )
    view = status(two_containers("Always"), events)
    assert view.phase is PodPhase.RUNNING
    assert not pod_is_finished(view, "Always")
    events("trainer", "waiting", reason="CrashLoopBackOff")("trainer", "running")
    again = status(two_containers("Always"), events)
    assert by_name(again)["trainer"]["restartCount"] == 1


def test_restart_waiting_counts_as_running() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 2)
    events("trainer", "waiting", reason="CrashLoopBackOff", back_off=10)
    view = status(two_containers("Always"), events)
    assert view.phase is PodPhase.RUNNING
    assert by_name(view)["trainer"]["lastState"]["terminated"]["exitCode"] == 2


def test_crash_loop_back_off_is_the_kubelets_waiting_state_and_count() -> None:
    """Exit, restart at once, exit, back off 10 s, restart, exit, back off 20 s: the count is
    the restarts made (not the one waited for), the message the kubelet's."""
    manifest = two_containers("OnFailure")
    events = Timeline()("trainer", "running")("logger", "running")
    events("trainer", "terminated", 1)("trainer", "running")("trainer", "terminated", 1)
    events("trainer", "waiting", reason="CrashLoopBackOff", back_off=10)
    first = by_name(status(manifest, events))["trainer"]
    assert first["restartCount"] == 1
    assert first["state"] == {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": (
                f"back-off 10s restarting failed container=trainer pod=train-1_research({UID})"
            ),
        }
    }
    assert first["lastState"]["terminated"]["exitCode"] == 1
    assert not first["ready"]
    events("trainer", "running")("trainer", "terminated", 1)
    events("trainer", "waiting", reason="CrashLoopBackOff", back_off=20)
    second = status(manifest, events)
    assert by_name(second)["trainer"]["restartCount"] == 2
    assert "back-off 20s" in by_name(second)["trainer"]["state"]["waiting"]["message"]
    assert second.phase is PodPhase.RUNNING
    events("trainer", "running")("trainer", "terminated", 0)("logger", "terminated", 0)
    done = status(manifest, events)
    assert by_name(done)["trainer"]["restartCount"] == 3
    assert done.phase is PodPhase.SUCCEEDED


def test_each_back_off_is_one_occasion_for_the_kubelets_back_off_event() -> None:
    manifest = two_containers("OnFailure")
    events = Timeline()("trainer", "running")("logger", "running")
    assert containers_backing_off(status(manifest, events)) == ()
    events("trainer", "terminated", 1)("trainer", "running")("trainer", "terminated", 1)
    events("trainer", "waiting", reason="CrashLoopBackOff", back_off=10)
    assert containers_backing_off(status(manifest, events)) == (("trainer", 1),)
    events("trainer", "running")
    assert containers_backing_off(status(manifest, events)) == ()
    events("trainer", "terminated", 1)("trainer", "waiting", reason="CrashLoopBackOff", back_off=20)
    assert containers_backing_off(status(manifest, events)) == (("trainer", 2),)
    assert back_off_event_message("trainer", manifest) == (
        f"Back-off restarting failed container trainer in pod train-1_research({UID})"
    )


def test_a_stop_during_the_back_off_is_no_restart() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("trainer", "terminated", 1)
    events("trainer", "running")("trainer", "terminated", 1)
    events("trainer", "waiting", reason="CrashLoopBackOff", back_off=10)
    events("trainer", "terminated", 143, reason="Killed")
    assert by_name(status(two_containers("Always"), events))["trainer"]["restartCount"] == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "200ms"), (10, "10s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (1.5, "1.5s")],
)
def test_back_off_reads_as_a_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("exits", "seconds"), [(1, 0), (2, 10), (3, 20), (4, 40), (6, 160), (7, 300), (20, 300)]
)
def test_the_restart_back_off_is_the_kubelets(exits: int, seconds: float) -> None:
    assert restart_back_off(exits) == seconds


def test_init_containers_gate_initialized() -> None:
    manifest = two_containers("Never", init=True)
    events = Timeline()("fetch", "running", init=True)
    view = status(manifest, events)
    assert view.phase is PodPhase.PENDING
    initialized = view.condition("Initialized")
    assert initialized is not None
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert by_name(view)["trainer"]["state"] == {"waiting": {"reason": "PodInitializing"}}
    events("fetch", "terminated", 0, init=True)
    done_init = status(manifest, events)
    assert done_init.condition("Initialized").status == "True"  # type: ignore[union-attr]
    assert by_name(done_init)["fetch"]["ready"] is True
    assert done_init.phase is PodPhase.PENDING  # app containers not started yet


def test_init_failure_with_never_fails_the_pod() -> None:
    events = Timeline()("fetch", "running", init=True)("fetch", "terminated", 1, init=True)
    view = status(two_containers("Never", init=True), events)
    assert view.phase is PodPhase.FAILED
    assert view.message is not None
    assert "init container fetch exited with code 1" in view.message
    assert pod_is_finished(view, "Never")


@pytest.mark.parametrize("policy", ["OnFailure", "Always"])
def test_init_failure_with_restarts_stays_pending(policy: str) -> None:
    events = Timeline()("fetch", "running", init=True)("fetch", "terminated", 1, init=True)
    view = status(two_containers(policy, init=True), events)
    assert view.phase is PodPhase.PENDING
    assert not pod_is_finished(view, policy)


def test_events_of_other_pods_and_unknown_containers_are_ignored() -> None:
    events = Timeline()("trainer", "running")("logger", "running")("ghost", "terminated", 9)
    other = ContainerStateEvent(
        pod_uid="someone-else",
        container="trainer",
        state="terminated",
        exit_code=1,
        at=T0 + timedelta(minutes=5),
    )
    view = pod_status_from_events(
        two_containers("Never"), [*events.events, other], host_ip=None, pod_ip=None, started_at=None
    )
    assert view.phase is PodPhase.RUNNING


def test_status_patch_is_camel_case_json() -> None:
    events = Timeline()("trainer", "running")("logger", "running")
    patch = to_status_patch(status(two_containers("Never"), events))
    body = json.loads(json.dumps(patch))
    assert set(body) == {"status"}
    status_ = body["status"]
    assert status_["phase"] == "Running"
    assert status_["hostIP"] == "10.0.1.17"
    assert status_["podIPs"] == [{"ip": "10.0.1.17"}]
    assert [c["type"] for c in status_["conditions"]] == [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    ]
    assert all("lastTransitionTime" in c for c in status_["conditions"])
    assert [s["name"] for s in status_["containerStatuses"]] == ["trainer", "logger"]
    assert status_["initContainerStatuses"] == []
    assert status_["message"] is None  # clears a stale message


_transitions = st.lists(
    st.tuples(
        st.sampled_from(["trainer", "logger"]),
        st.sampled_from(["waiting", "running", "terminated"]),
        st.integers(min_value=0, max_value=2),
    ),
    max_size=12,
)


@given(policy=st.sampled_from(["Always", "OnFailure", "Never"]), transitions=_transitions)
def test_phase_rules_hold_for_any_event_sequence(
    policy: str, transitions: list[tuple[str, str, int]]
) -> None:
    events = Timeline()
    for name, state, code in transitions:
        events(name, state, code if state == "terminated" else None)
    view = status(two_containers(policy), events)
    states = [s["state"] for s in view.container_statuses]
    if policy == "Always":
        assert view.phase is not PodPhase.SUCCEEDED
    if view.phase is PodPhase.SUCCEEDED:
        assert all(s.get("terminated", {}).get("exitCode") == 0 for s in states)
    if view.phase is PodPhase.FAILED:
        assert policy == "Never"
        assert all("terminated" in s for s in states)
    # every restart is a termination followed by another state
    for name in ("trainer", "logger"):
        sequence = [state for n, state, _ in transitions if n == name]
        restarts = sum(
            1
            for before, after in itertools.pairwise(sequence)
            if before == "terminated" and after != "terminated"
        )
        assert by_name(view)[name]["restartCount"] == restarts
    assert pod_is_finished(view, policy) == (view.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED))


@given(
    policy=st.sampled_from(["Always", "OnFailure", "Never"]),
    init=st.booleans(),
    transitions=_transitions,
)
def test_status_inputs_read_the_same_status_as_the_whole_manifest(
    policy: str, init: bool, transitions: list[tuple[str, str, int]]
) -> None:
    manifest = two_containers(policy, init=init)
    manifest["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    manifest["metadata"]["annotations"] = {"orca.research/instance-type": "g5.xlarge"}
    manifest["spec"]["containers"][0]["env"] = [{"name": "EPOCHS", "value": "90"}]
    manifest["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t1"}],
    }
    events = Timeline()
    for name, state, code in transitions:
        events(name, state, code if state == "terminated" else None)

    slim = status_inputs(manifest)

    assert status(slim, events) == status(manifest, events)
    assert pod_ref_from_pod(slim) == pod_ref_from_pod(manifest)
    assert "annotations" not in slim["metadata"]
    assert "env" not in slim["spec"]["containers"][0]
    assert len(json.dumps(slim)) < len(json.dumps(manifest))


SPOT_END = {
    "exitCode": 143,
    "reason": "SpotInterruption",
    "startedAt": "2026-11-26T09:00:00Z",
    "finishedAt": "2026-11-26T09:59:00Z",
}


def relaunched(events: Timeline) -> PodStatusView:
    """The status on a pod's second instance: one restart and a spot end carried in."""
    return pod_status_from_events(
        two_containers("OnFailure"),
        events.events,
        host_ip="10.0.1.18",
        pod_ip="10.0.1.18",
        started_at=T0,
        restart_base={"trainer": 1, "logger": 1},
        last_terminated={"trainer": SPOT_END, "logger": SPOT_END},
    )


def test_restart_base_and_last_termination_carry_into_a_new_instance() -> None:
    waiting = by_name(relaunched(Timeline()))["trainer"]
    assert waiting["restartCount"] == 1
    assert waiting["lastState"] == {"terminated": SPOT_END}
    view = relaunched(Timeline()("trainer", "running")("logger", "running"))
    trainer = by_name(view)["trainer"]
    assert trainer["restartCount"] == 1  # the runner's first start is no restart
    assert trainer["lastState"]["terminated"]["reason"] == "SpotInterruption"
    assert view.phase is PodPhase.RUNNING


def test_a_restart_on_the_new_instance_adds_to_the_base_and_replaces_last_state() -> None:
    events = Timeline()("trainer", "running")("logger", "running")
    events("trainer", "terminated", 1)("trainer", "running")
    trainer = by_name(relaunched(events))["trainer"]
    assert trainer["restartCount"] == 2
    assert trainer["lastState"]["terminated"]["exitCode"] == 1
    assert trainer["lastState"]["terminated"]["reason"] == "Error"
    logger = by_name(relaunched(events))["logger"]
    assert logger["restartCount"] == 1
    assert logger["lastState"]["terminated"]["reason"] == "SpotInterruption"


def test_a_relaunched_pod_counts_only_its_new_instances_events() -> None:
    """The first instance ran and was stopped (143) at T0+2 s; the relaunch began at T0+2.6 s;
    the new instance's events (T0+3 s on) restart from waiting. Counting the old ones too would
    see terminated → waiting as one more restart than the interruption already carried."""
    events = Timeline()("trainer", "running")("trainer", "terminated", 143)
    events("trainer", "waiting", reason="PullingImage")("trainer", "running")
    began = T0 + timedelta(seconds=2, milliseconds=600)
    current = incarnation_events(events.events, began)
    assert [e.state for e in current] == ["waiting", "running"]
    assert incarnation_events(events.events, None) == events.events
    interrupted = {"exitCode": 143, "reason": "SpotInterruption"}
    view = pod_status_from_events(
        pod(containers=[container("trainer")], restart_policy="OnFailure"),
        current,
        host_ip=None,
        pod_ip=None,
        started_at=None,
        restart_base={"trainer": 1},
        last_terminated={"trainer": interrupted},
    )
    (trainer,) = view.container_statuses
    assert trainer["restartCount"] == 1
    assert trainer["lastState"] == {"terminated": interrupted}
    assert "running" in trainer["state"]
