"""The control plane's own secrets, written into its working folder before it starts.

kube-apiserver needs a key to sign and verify service-account tokens (kube-controller-manager
signs with the same key), a client CA for kubelet certificates, and a token file that makes
the admin a member of ``system:masters``. The identities handed to components are made later,
from these, by :mod:`controlplane.identities`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from controlplane.configuration import ControlPlaneError
from controlplane.identities import ClientCA


def service_account_key(workdir: Path) -> Path:
    """Where the service-account signing key of the plane in ``workdir`` lies."""
    return workdir / "service-account.key"


def token_file(workdir: Path) -> Path:
    """Where the static token file (``--token-auth-file``) of the plane in ``workdir`` lies."""
    return workdir / "tokens.csv"


def write_credentials(workdir: Path, token: str) -> Path:
    """Write the service-account key (once: a restarted plane keeps it), the client CA and the
    admin's ``token``; returns the key's path."""
    key = service_account_key(workdir)
    if not key.exists():
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ControlPlaneError(
                "the openssl command is needed to make the service-account signing key; "
                "install it (Debian/Ubuntu: apt-get install openssl)"
            )
        result = subprocess.run(
            [openssl, "genrsa", "-out", str(key), "2048"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl genrsa failed: {result.stderr.strip()}")
    ClientCA.create(workdir)
    tokens = token_file(workdir)
    tokens.write_text(f'{token},vramfit-admin,vramfit-admin,"system:masters"\n')
    tokens.chmod(0o600)
    return key
