"""The few Kubernetes API calls the extender makes, as raw JSON over the official client.

The generated client turns every object into model classes, which is slow for thousands of pods
and fails outright on a Binding reply (it insists on ``target`` in the answer). So every call
here goes through ``ApiClient.call_api`` with ``_preload_content=False`` and parses the body with
orjson; errors become ``KubeError`` carrying the HTTP status and the API server's message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

_MESSAGE_CAP = 300
"""Characters of the API server's message kept: it may quote what the request carried, and it
ends up in bind's reply and the logs."""


class KubeError(RuntimeError):
    """A failed API call: ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}" if status else f"{what}: {message}")
        self.status = status
        self.message = message


class PodAPI(Protocol):
    """What bind needs from the API server."""

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    def bind_pod(
        self,
        namespace: str,
        name: str,
        uid: str,
        node: str,
        *,
        annotations: Mapping[str, str] | None = None,
        resource_version: str = "",
    ) -> None: ...


def _message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = orjson.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
                return str(parsed["message"])[:_MESSAGE_CAP]
        except orjson.JSONDecodeError:
            pass
        return body[:_MESSAGE_CAP]
    return str(exc.reason or "error")


class KubeAPI:
    """Raw-JSON calls on one injected ``ApiClient``; safe to share between threads."""

    def __init__(self, api: k8s.ApiClient, *, timeout_s: float = 5.0) -> None:
        self.api = api
        self.timeout_s = timeout_s

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        try:
            return self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout if timeout is not None else self.timeout_s,
            )
        except ApiException as exc:
            raise KubeError(what, int(exc.status or 0), _message(exc)) from None
        except Exception as exc:  # urllib3 errors: connection refused, timeouts, TLS
            raise KubeError(what, 0, f"{type(exc).__name__}: {exc}") from None

    def _json(self, what: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self._call(what, method, path, **kw)
        try:
            data = resp.data
        except Exception as exc:  # the connection broke mid-reply
            resp.close()
            raise KubeError(what, 0, f"{type(exc).__name__}: {exc}") from None
        resp.release_conn()
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise KubeError(what, int(resp.status), f"reply is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise KubeError(what, int(resp.status), "reply is not a JSON object")
        return parsed

    # ----- pods (bind) ---------------------------------------------------------------------------

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            f"get pod {namespace}/{name}",
            "GET",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}",
        )

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7386); a ``metadata.resourceVersion`` in it is a precondition."""
        return self._json(
            f"patch pod {namespace}/{name}",
            "PATCH",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}",
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    def nominate_pod(self, namespace: str, name: str, node: str, resource_version: str) -> None:
        """Set the pod's ``status.nominatedNodeName`` (a merge patch of its status), on the
        condition that the pod is still at ``resource_version``."""
        self._json(
            f"nominate pod {namespace}/{name} to {node}",
            "PATCH",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/status",
            body={
                "metadata": {"resourceVersion": resource_version},
                "status": {"nominatedNodeName": node},
            },
            content_type="application/merge-patch+json",
        )

    def withdraw_nomination(self, namespace: str, name: str, node: str) -> None:
        """Remove the pod's ``status.nominatedNodeName`` if it still names ``node`` (a JSON
        patch whose test fails, with 422, when kube-scheduler has nominated it since)."""
        self._json(
            f"withdraw the nomination of pod {namespace}/{name} to {node}",
            "PATCH",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/status",
            body=[
                {"op": "test", "path": "/status/nominatedNodeName", "value": node},
                {"op": "remove", "path": "/status/nominatedNodeName"},
            ],
            content_type="application/json-patch+json",
        )

    def bind_pod(
        self,
        namespace: str,
        name: str,
        uid: str,
        node: str,
        *,
        annotations: Mapping[str, str] | None = None,
        resource_version: str = "",
    ) -> None:
        """POST the Binding, with the pod UID (and ``resource_version``, when given) as
        preconditions, and check the status. The API server writes ``annotations`` onto the
        pod in the same update that sets its node."""
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid}
        if resource_version:
            meta["resourceVersion"] = resource_version
        if annotations:
            meta["annotations"] = dict(annotations)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        resp = self._call(
            f"bind pod {namespace}/{name} to {node}",
            "POST",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/binding",
            body=body,
        )
        try:
            status = int(resp.status)
            resp.read()  # drain the reply, or the pooled connection carries it into the next call
        finally:
            resp.release_conn()
        if status not in (200, 201):
            raise KubeError(f"bind pod {namespace}/{name} to {node}", status, "unexpected status")

    # ----- lists and watches ------------------------------------------------------------------

    def list_page(self, path: str, *, limit: int, cont: str = "") -> dict[str, Any]:
        """One page of a list (raw JSON object with ``items`` and ``metadata``)."""
        query: list[tuple[str, Any]] = [("limit", limit)]
        if cont:
            query.append(("continue", cont))
        return self._json(f"list {path}", "GET", path, query=query, timeout=(5.0, 60.0))

    def watch_lines(self, path: str, *, resource_version: str, timeout_s: int) -> Iterator[bytes]:
        """The raw event lines of one watch request; ends when the server closes it."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_s),
        ]
        resp = self._call(
            f"watch {path}", "GET", path, query=query, timeout=(5.0, timeout_s + 30.0)
        )
        buffer = bytearray()
        try:
            for chunk in resp.stream(amt=None, decode_content=True):
                buffer.extend(chunk)
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    if end > start:
                        yield bytes(buffer[start:end])
                    start = end + 1
                del buffer[:start]
            if buffer.strip():
                yield bytes(buffer)
        finally:
            # A watch may stop mid-stream: never hand a half-read connection back to the pool.
            resp.close()
