"""The content a fresh emulator holds, so the embedded stack looks like a real account.

A VPC (10.0.0.0/16) with one subnet per zone, a security group, four public AMIs (Amazon Linux
2023 x86_64 and arm64, the NVIDIA GPU Deep Learning Base AMI and the Neuron multi-framework
DLAMI) with the public SSM parameters ORCA resolves them by, the interruption queue
``orca-interruptions`` and the log groups of docs/instance-contract.md. moto's ids come from its
own random generator; seeding it with a fixed value while this content is created makes the ids
identical after every reset and in every process.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.utils import random_ami_id
from moto.logs.models import logs_backends
from moto.moto_api._internal import mock_random
from moto.sqs.models import sqs_backends
from moto.ssm.models import Parameter, ssm_backends

from orca_devstack.emulators.aws.config import EmulatorDefaults

INTERRUPTION_QUEUE = "orca-interruptions"
LOG_GROUP = "/orca/pods"
STATUS_LOG_GROUP = "/orca/container-status"
ID_SEED = 20251126

AL2023_X86 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AL2023_ARM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
DLAMI_GPU = (
    "/aws/service/deeplearning/ami/x86_64/"
    "base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
)
DLAMI_NEURON = "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id"

# (key, SSM parameter, architecture, owner account, AMI name)
AMIS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "al2023-x86_64",
        AL2023_X86,
        "x86_64",
        "137112412989",
        "al2023-ami-2023.7.20250527.1-kernel-6.1-x86_64",
    ),
    (
        "al2023-arm64",
        AL2023_ARM,
        "arm64",
        "137112412989",
        "al2023-ami-2023.7.20250527.1-kernel-6.1-arm64",
    ),
    (
        "dlami-gpu",
        DLAMI_GPU,
        "x86_64",
        "898082745236",
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) 20250601",
    ),
    (
        "dlami-neuron",
        DLAMI_NEURON,
        "x86_64",
        "898082745236",
        "Deep Learning AMI Neuron (Amazon Linux 2023) 20250601",
    ),
)


def seed_defaults(account_id: str, region: str, zone_suffixes: tuple[str, ...]) -> EmulatorDefaults:
    """Create the default content in moto's backends (which must be empty of it)."""
    # moto makes a backend on its first use, by whichever thread touches it first, and the EC2
    # backend's own content (the default VPC) draws ids from the same generator: make them all
    # before seeding, so only this content's ids come from the seeded sequence.
    for backends in (ec2_backends, ssm_backends, sqs_backends, logs_backends):
        _ = backends[account_id][region]
    mock_random.seed(ID_SEED)
    try:
        return _seed(account_id, region, zone_suffixes)
    finally:
        mock_random.seed(int.from_bytes(os.urandom(8), "big"))


def _seed(account_id: str, region: str, zone_suffixes: tuple[str, ...]) -> EmulatorDefaults:
    ec2 = ec2_backends[account_id][region]
    vpc = ec2.create_vpc("10.0.0.0/16")
    ec2.create_tags([vpc.id], {"Name": "orca-dev"})
    subnet_ids: dict[str, str] = {}
    for index, suffix in enumerate(zone_suffixes):
        zone = f"{region}{suffix}"
        subnet = ec2.create_subnet(
            vpc_id=vpc.id, cidr_block=f"10.0.{index * 16}.0/20", availability_zone=zone
        )
        ec2.create_tags([subnet.id], {"Name": f"orca-dev-{zone}", "orca.research/dev": "true"})
        subnet_ids[zone] = subnet.id
    group = ec2.create_security_group(
        name="orca-dev", description="ORCA burst instances (emulated)", vpc_id=vpc.id
    )
    ec2.create_tags([group.id], {"Name": "orca-dev"})

    ssm = ssm_backends[account_id][region]
    ami_ids: dict[str, str] = {}
    ami_parameters: dict[str, str] = {}
    created = datetime(2025, 6, 1, tzinfo=UTC)
    for key, parameter, architecture, owner, name in AMIS:
        ami = Ami(
            ec2,
            random_ami_id(),
            name=name,
            description=name,
            owner_id=owner,
            owner_alias="amazon",
            public=True,
            virtualization_type="hvm",
            architecture=architecture,
            hypervisor="xen",
            root_device_type="ebs",
            root_device_name="/dev/xvda",
            region_name=region,
            creation_date=created,
        )
        ec2.amis[ami.id] = ami
        ami_ids[key] = ami.id
        ami_parameters[parameter] = ami.id
        _ = ssm._parameters[parameter]  # let moto load its own /aws/service tree first
        dict.__setitem__(
            ssm._parameters,
            parameter,
            [
                Parameter(  # type: ignore[abstract]
                    account_id=account_id,
                    name=parameter,
                    value=ami.id,
                    parameter_type="String",
                    description=None,
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=created,
                    version=1,
                    data_type="aws:ec2:image",
                )
            ],
        )

    sqs = sqs_backends[account_id][region]
    queue = sqs.create_queue(INTERRUPTION_QUEUE, tags=None, MessageRetentionPeriod="300")
    logs = logs_backends[account_id][region]
    for group_name in (LOG_GROUP, STATUS_LOG_GROUP):
        logs.create_log_group(group_name, tags={})

    return EmulatorDefaults(
        region=region,
        account_id=account_id,
        vpc_id=vpc.id,
        subnet_ids=subnet_ids,
        security_group_id=group.id,
        interruption_queue_name=INTERRUPTION_QUEUE,
        interruption_queue_url="",  # filled in by the server, which knows its endpoint
        interruption_queue_arn=queue.queue_arn,
        log_group=LOG_GROUP,
        status_log_group=STATUS_LOG_GROUP,
        ami_ids=ami_ids,
        ami_parameters=ami_parameters,
    )
