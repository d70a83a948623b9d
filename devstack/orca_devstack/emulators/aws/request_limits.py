"""Request-shape limits EC2 enforces and moto does not, so code that breaks them fails here too.

- A call's filters may carry at most 200 values in all (`FilterLimitExceeded`): describing 1000
  instances through an `instance-id` filter works in moto and fails in AWS.
- DescribeInstances' `MaxResults` is 5 to 1000 and cannot be combined with `InstanceId.N`
  (`InvalidParameterValue`, `InvalidParameterCombination`).
"""

from __future__ import annotations

import re

from werkzeug.datastructures import MultiDict

from orca_devstack.emulators.aws.errors import AwsError

MAX_FILTER_VALUES = 200
_FILTER_VALUE = re.compile(r"^Filter\.\d+\.Value\.\d+$")


def check_ec2_request(action: str, form: MultiDict[str, str]) -> None:
    """Raise the AwsError EC2 would answer for a request over its limits."""
    values = sum(1 for key in form if _FILTER_VALUE.match(key))
    if values > MAX_FILTER_VALUES:
        raise AwsError.of(
            "FilterLimitExceeded",
            f"The maximum number of filter values specified on a single call is "
            f"{MAX_FILTER_VALUES}",
        )
    if action != "DescribeInstances" or "MaxResults" not in form:
        return
    if any(key.startswith("InstanceId.") for key in form):
        raise AwsError.of(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        )
    try:
        max_results = int(form["MaxResults"])
    except ValueError:
        max_results = -1
    if not 5 <= max_results <= 1000:
        raise AwsError.of(
            "InvalidParameterValue",
            f"Value ( {form['MaxResults']} ) for parameter maxResults is invalid. "
            "Expecting a value between 5 and 1000.",
        )
