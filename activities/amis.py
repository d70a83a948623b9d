"""AMI lookup: which image an instance boots, and its root device, cached per worker process.

The pod's `ami-id` annotation wins, then the settings' `aws.amiId`; without either, the AMI is
AWS's public SSM parameter for the instance family (the Deep Learning Base AMI with the NVIDIA
driver for GPUs, the Neuron DLAMI for Trainium/Inferentia, else AL2023), read with GetParameter.
The root device name comes from DescribeImages, so the encrypted gp3 root volume maps onto the
image's own root device. Both answers are cached: a burst of pods costs one call per parameter
and one per AMI, not one per pod.
"""

from __future__ import annotations

import threading

from orca.aws_clients import AwsClients
from orca.selection import AcceleratorKind, InstanceTypeInfo

AMI_PARAMETER_GPU = (
    "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-amazon-linux-2023"
    "/latest/ami-id"
)
AMI_PARAMETER_NEURON = "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id"
AMI_PARAMETER_DEFAULT = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
DEFAULT_ROOT_DEVICE = "/dev/xvda"
"""The root device when DescribeImages does not name one."""


def choose_ami_parameter(info: InstanceTypeInfo) -> str:
    """AWS's public SSM parameter holding the current AMI for this family (pure)."""
    arch = (
        "arm64"
        if "arm64" in info.architectures and "x86_64" not in info.architectures
        else "x86_64"
    )
    if info.accelerator is AcceleratorKind.GPU:
        return AMI_PARAMETER_GPU.format(arch=arch)
    if info.accelerator is AcceleratorKind.NEURON:
        return AMI_PARAMETER_NEURON
    return AMI_PARAMETER_DEFAULT.format(arch=arch)


class Amis:
    def __init__(self, aws: AwsClients, default_ami: str | None) -> None:
        self._aws = aws
        self._default_ami = default_ami
        self._ami_by_parameter: dict[str, str] = {}
        self._root_device_by_ami: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve(self, info: InstanceTypeInfo, pinned_ami: str | None) -> tuple[str, str]:
        """(AMI ID, root device name) for one instance type; `pinned_ami` is the pod's."""
        ami = pinned_ami or self._default_ami
        if ami is None:
            parameter = choose_ami_parameter(info)
            with self._lock:
                ami = self._ami_by_parameter.get(parameter)
            if ami is None:
                ami = self._aws.ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
                with self._lock:
                    self._ami_by_parameter[parameter] = ami
        with self._lock:
            root = self._root_device_by_ami.get(ami)
        if root is None:
            images = self._aws.ec2.describe_images(ImageIds=[ami])["Images"]
            root = (images[0].get("RootDeviceName") if images else None) or DEFAULT_ROOT_DEVICE
            with self._lock:
                self._root_device_by_ami[ami] = root
        return ami, root
