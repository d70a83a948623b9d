"""A pod's team from its namespace's `orca.research/team` label, against the Kubernetes emulator."""

from __future__ import annotations

from kubernetes import client

from orca.activities.namespace_teams import TEAM_LABEL, NamespaceTeams


async def test_team_comes_from_the_namespace_label_and_is_cached(
    kube_core: client.CoreV1Api,
) -> None:
    kube_core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name="vision", labels={TEAM_LABEL: "cv-lab"})
        )
    )
    kube_core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="plain")))
    now = [0.0]
    teams = NamespaceTeams(kube_core, ttl_seconds=60, clock=lambda: now[0])
    assert await teams.team_of("vision") == "cv-lab"
    assert await teams.team_of("plain") is None
    kube_core.patch_namespace("vision", {"metadata": {"labels": {TEAM_LABEL: "robotics"}}})
    assert await teams.team_of("vision") == "cv-lab"  # cached
    now[0] = 61
    assert await teams.team_of("vision") == "robotics"


async def test_a_namespace_that_cannot_be_read_gives_no_team(kube_core: client.CoreV1Api) -> None:
    teams = NamespaceTeams(kube_core)
    assert await teams.team_of("does-not-exist") is None
