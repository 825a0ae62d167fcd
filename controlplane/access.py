"""How tests and components reach a running control plane.

The admin gets an ApiClient and the built kubectl, both through the plane's kubeconfig (a
``system:masters`` token). Components under test get identities of their own, as in a real
cluster (:mod:`controlplane.identities`): ServiceAccount tokens from the TokenRequest API and
kubelet client certificates from the plane's client CA. :class:`PlaneAccess` is the part of
:class:`controlplane.harness.ControlPlane` that hands these out; the plane sets the attributes
it declares.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane.binaries import BinarySet
from controlplane.configuration import ControlPlaneError
from controlplane.identities import (
    ClientCA,
    ServiceAccountIdentity,
    kubelet_identity,
    service_account_identity,
)


class PlaneAccess:
    """Clients and identities for the plane in ``workdir`` whose API server listens on
    ``api_port``."""

    binaries: BinarySet
    workdir: Path
    kubeconfig: Path
    client_ca: ClientCA
    identities_dir: Path
    api_port: int

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate, which every kubeconfig verifies."""
        return self.workdir / "apiserver-certs" / "apiserver.crt"

    # --- clients ----------------------------------------------------------------------------

    def api_client(self) -> k8s_client.ApiClient:
        """A new kubernetes ApiClient for this plane (close it, or use it in a ``with``)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this plane; raises with its stderr when ``check``."""
        command = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    # --- identities -------------------------------------------------------------------------

    def service_account_identity(
        self, namespace: str, name: str, *, label: str = "", pod: k8s_client.V1Pod | None = None
    ) -> ServiceAccountIdentity:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a token
        from the TokenRequest API, bound to ``pod`` when given (``label``: its folder name, so
        that several components may use one account)."""
        directory = self.identities_dir / f"sa-{namespace}-{name}" / (label or "default")
        with self.api_client() as api:
            return service_account_identity(
                k8s_client.CoreV1Api(api),
                server=self.server,
                ca_file=self.ca_file,
                directory=directory,
                namespace=namespace,
                name=name,
                pod=pod,
            )

    def kubelet_kubeconfig(self, node: str) -> Path:
        """A kubeconfig that authenticates as node ``node``'s kubelet (``system:node:<node>``)."""
        return kubelet_identity(
            self.client_ca,
            server=self.server,
            ca_file=self.ca_file,
            directory=self.identities_dir / f"node-{node}",
            node=node,
        )
