"""Every Prometheus metric ORCA exports, in one place (documented in docs/metrics.md).

The worker and the watcher each serve their registry on `metrics.port` at `metrics.path`.
Labels are bounded sets (instance types, zones, reasons), never pod names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LAUNCHES = Counter(
    "orca_launches_total",
    "Instances launched, by instance type, zone and capacity type.",
    ["instance_type", "zone", "capacity_type"],
)
LAUNCH_FAILURES = Counter(
    "orca_launch_failures_total",
    "Launch attempts that failed, by instance type, zone, capacity type and AWS error code.",
    ["instance_type", "zone", "capacity_type", "reason"],
)
FALLBACKS = Counter(
    "orca_fallbacks_total",
    "Launches that succeeded on a candidate other than the first.",
    ["instance_type", "capacity_type"],
)
PODS_BY_PHASE = Gauge(
    "orca_pods",
    "Pods bound to the virtual node, by phase (watcher's view).",
    ["phase"],
)
POD_STARTUP_SECONDS = Histogram(
    "orca_pod_startup_seconds",
    "Time from pod creation to Running.",
    buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600),
)
FORGED_STATUS_REPORTS = Counter(
    "orca_forged_status_reports_total",
    "Container status reports ignored: unsigned, signed with the wrong key, or in another pod's "
    "stream (docs/security.md).",
)
AWS_API_CALLS = Counter(
    "orca_aws_api_calls_total", "AWS API calls, by service and operation.", ["service", "operation"]
)
AWS_API_ERRORS = Counter(
    "orca_aws_api_errors_total",
    "AWS API calls that returned an error, by service, operation and error code.",
    ["service", "operation", "code"],
)
AWS_API_LATENCY = Histogram(
    "orca_aws_api_latency_seconds",
    "AWS API call latency, by service and operation.",
    ["service", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POLL_ROUNDS = Counter(
    "orca_poll_rounds_total",
    "Poll rounds the worker's batched pollers completed (one per interval while anything waits).",
    ["poller"],
)
POLL_WAITERS = Gauge(
    "orca_poll_waiters",
    "Resources (instances) the batched poller's last round answered for.",
    ["poller"],
)
INTERRUPTIONS = Counter(
    "orca_interruptions_total", "EC2 interruption events received, by kind.", ["kind"]
)
WATCH_RESTARTS = Counter(
    "orca_watch_restarts_total",
    "Pod watch restarts, by reason (expired, dropped, error).",
    ["reason"],
)
WORKFLOW_SIGNALS = Counter(
    "orca_workflow_signals_total",
    "Starts and signals sent to PodLifecycle workflows by the watcher, by kind.",
    ["kind"],
)
ORPHANS_FOUND = Counter(
    "orca_orphans_found_total",
    "Objects the orphan sweep found without a running PodLifecycle workflow, by kind "
    "(instance, spot-request, secret-parameters, pod); counted in report-only mode too.",
    ["kind"],
)
ORPHANS_ENDED = Counter(
    "orca_orphans_ended_total",
    "Orphans the sweep ended (instance terminated, spot request cancelled, parameters deleted, "
    "pod failed with reason WorkflowEnded), by kind.",
    ["kind"],
)
ORPHAN_SWEEPS = Counter(
    "orca_orphan_sweeps_total",
    "Orphan sweeps, by outcome (swept, report-only, failed: Temporal or AWS could not be read, "
    "so nothing was ended).",
    ["outcome"],
)
# Budgets and cost: set by every worker from the budget ledger's summary (worker/ledger_metrics.py),
# so every worker reports the same cluster-wide values; take max over the workers' series.
BUDGET_USED = Gauge(
    "orca_budget_used",
    "What a budget has used: instances, GPUs, or dollars (hourly cost, spend today or this month), "
    "by budget (the setting) and scope (namespace or cluster).",
    ["budget", "scope"],
)
BUDGET_LIMIT = Gauge(
    "orca_budget_limit",
    "A budget's configured limit, by budget (the setting) and scope (namespace or cluster).",
    ["budget", "scope"],
)
HOURLY_COST = Gauge(
    "orca_hourly_cost_dollars",
    "Sum of the hourly prices of the cluster's running instances, in dollars per hour.",
)
SPEND = Gauge(
    "orca_spend_dollars",
    "Dollars the cluster's instances accrued in the current UTC day or month.",
    ["period"],
)
LAUNCHES_HELD = Gauge(
    "orca_launches_held",
    "Launches the budget ledger holds (pods waiting for a budget to have room).",
)
RUNNING_INSTANCES = Gauge(
    "orca_running_instances",
    "Instances running for the cluster's pods, by instance type and budget namespace.",
    ["instance_type", "namespace"],
)
POD_COST = Gauge(
    "orca_pod_cost_dollars",
    "Dollars the pods of a budget namespace and team accrued in the current UTC day or month.",
    ["namespace", "team", "period"],
)
LEDGER_READS = Counter(
    "orca_ledger_reads_total",
    "Reads of the budget ledger's summary for the metrics, by outcome (ok, no-ledger, failed).",
    ["outcome"],
)
POD_ACCELERATOR_UTILIZATION = Gauge(
    "orca_pod_accelerator_utilization_percent",
    "Newest accelerator utilization of each running pod from CloudWatch (docs/stats.md), by "
    "accelerator (gpu, neuroncore).",
    ["namespace", "pod", "accelerator"],
)
