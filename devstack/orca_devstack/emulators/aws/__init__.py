"""An AWS emulator for ORCA's embedded stack and tests: moto's server plus launch delays,
capacity, faults, prices, spot interruptions, capacity reservations and a container lifecycle
behind SSM (docs/instance-contract.md)."""

from orca_devstack.emulators.aws.config import CapacitySpec, EmulatorConfig, EmulatorDefaults
from orca_devstack.emulators.aws.server import AwsEmulator

__all__ = ["AwsEmulator", "CapacitySpec", "EmulatorConfig", "EmulatorDefaults"]
