"""Instance limits as a pure decision: which limit a launch would break, if any."""

from __future__ import annotations

from orca.activities.instance_inventory import LiveInstance, limit_violation
from orca.settings import LimitsSettings, NamespaceQuota

GPUS = {"p5.48xlarge": 8, "g5.xlarge": 1, "m5.large": 0}


def gpus(name: str) -> int:
    return GPUS.get(name, 0)


def live(*items: tuple[str, str]) -> list[LiveInstance]:
    return [LiveInstance(f"i-{n}", ns, t) for n, (ns, t) in enumerate(items)]


def test_zero_means_unlimited() -> None:
    limits = LimitsSettings(max_concurrent_instances=0, max_instances_per_namespace=0)
    running = live(*[("a", "m5.large")] * 500)
    assert limit_violation(running, "a", "m5.large", gpus, limits) is None


def test_concurrent_limit_counts_every_namespace() -> None:
    limits = LimitsSettings(max_concurrent_instances=2, max_instances_per_namespace=0)
    running = live(("a", "m5.large"), ("b", "m5.large"))
    reason = limit_violation(running, "c", "m5.large", gpus, limits)
    assert reason is not None
    assert "maxConcurrentInstances (2)" in reason


def test_per_namespace_limit_counts_only_that_namespace() -> None:
    limits = LimitsSettings(max_concurrent_instances=0, max_instances_per_namespace=1)
    running = live(("a", "m5.large"))
    assert limit_violation(running, "b", "m5.large", gpus, limits) is None
    assert "namespace a has 1" in (limit_violation(running, "a", "m5.large", gpus, limits) or "")


def test_namespace_quota_on_gpus() -> None:
    limits = LimitsSettings(
        max_concurrent_instances=0,
        max_instances_per_namespace=0,
        namespace_quotas={"ml": NamespaceQuota(max_gpus=8)},
    )
    running = live(("ml", "g5.xlarge"))
    reason = limit_violation(running, "ml", "p5.48xlarge", gpus, limits)
    assert reason is not None
    assert "maxGPUs (8)" in reason
    assert limit_violation(running, "ml", "g5.xlarge", gpus, limits) is None
    assert limit_violation(running, "ml", "m5.large", gpus, limits) is None  # no GPU asked


def test_dollar_budgets_that_are_set_are_named_as_unenforced() -> None:
    assert LimitsSettings().unenforced_budgets() == []
    limits = LimitsSettings.model_validate(
        {
            "dailyBudget": 50,
            "monthlyBudget": 0,
            "namespaceQuotas": {"ml": {"dailyBudget": 20}, "vision": {"maxInstances": 2}},
        }
    )
    assert limits.unenforced_budgets() == [
        "limits.dailyBudget",
        "limits.namespaceQuotas.ml.dailyBudget",
    ]
