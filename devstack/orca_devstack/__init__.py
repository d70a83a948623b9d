"""ORCA's development stack, kept apart from the product as karpenter keeps `pkg/fake`.

- `emulators.aws`: moto's server behind a middleware that adds what ORCA's tests need of EC2,
  SSM and CloudWatch Logs (launch delays, capacity, faults, prices, interruptions, reservations,
  a container lifecycle behind SSM);
- `emulators.kube`: a Kubernetes API server emulator that the official client and kubectl use;
- `stack`, `processes`: `orca dev`, every real server as a local child process;
- `examples`, `example_pods/`: the pods `orca dev --example-pods` submits;
- `cli`: the `orca dev` command, registered in the `orca.commands` entry-point group.

The product (`orca`) never imports this package.
"""

__version__ = "0.1.0"
