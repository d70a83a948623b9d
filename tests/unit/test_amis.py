"""The public SSM parameter that names each instance family's AMI (pure)."""

from __future__ import annotations

import pytest

from orca.activities.amis import choose_ami_parameter
from orca.selection import InstanceTypeInfo


@pytest.mark.parametrize(
    ("info", "parameter"),
    [
        (
            InstanceTypeInfo(name="p5.48xlarge", vcpus=192, memory_mib=2097152, gpus=8),
            "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
        ),
        (
            InstanceTypeInfo(
                name="g5g.xlarge", vcpus=4, memory_mib=8192, gpus=1, architectures=("arm64",)
            ),
            "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
        ),
        (
            InstanceTypeInfo(name="trn1.32xlarge", vcpus=128, memory_mib=524288, neuron_devices=16),
            "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id",
        ),
        (
            InstanceTypeInfo(name="inf2.xlarge", vcpus=4, memory_mib=16384, neuron_devices=1),
            "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id",
        ),
        (
            InstanceTypeInfo(name="c7i.large", vcpus=2, memory_mib=4096),
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        ),
        (
            InstanceTypeInfo(name="m7g.large", vcpus=2, memory_mib=8192, architectures=("arm64",)),
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
        ),
    ],
)
def test_ami_parameter_per_family(info: InstanceTypeInfo, parameter: str) -> None:
    assert choose_ami_parameter(info) == parameter
