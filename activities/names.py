"""Activity names: the workflow calls activities by these names (it must not import the
implementations, which use boto3 and the Kubernetes client), the worker registers them under the
same names, and tests replace them by name."""

from __future__ import annotations

from enum import StrEnum


class ActivityName(StrEnum):
    PLAN_LAUNCH = "plan_launch"
    LAUNCH_INSTANCE = "launch_instance"
    WAIT_UNTIL_RUNNING = "wait_until_running"
    START_CONTAINERS = "start_containers"
    MONITOR_POD = "monitor_pod"
    STOP_CONTAINERS = "stop_containers"
    TERMINATE_INSTANCES = "terminate_instances"
    REPORT_POD_STATUS = "report_pod_status"
    RECORD_POD_EVENT = "record_pod_event"
    DELETE_POD_OBJECT = "delete_pod_object"
    FORGET_OFFERING = "forget_offering"
    FIND_ORPHANS = "find_orphans"
    END_ORPHANS = "end_orphans"
