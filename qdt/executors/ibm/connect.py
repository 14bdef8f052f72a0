"""Connecting to a device: a fake backend (local testing mode) or an IBM Quantum device.

Secrets: qdt never takes a token as an argument, never reads it itself and never stores it. The
Runtime client finds it where Qiskit documents: ``QISKIT_IBM_TOKEN`` (with ``QISKIT_IBM_INSTANCE``,
``QISKIT_IBM_CHANNEL``) or an account saved with ``QiskitRuntimeService.save_account`` (a JSON
file, ``~/.qiskit/qiskit-ibm.json``, that Qiskit writes readable by everyone under the default
umask: qdt warns unless it is ``chmod 600``). The file's path is fixed when qiskit-ibm-runtime is
imported (``~`` expanded then). Looking for an account makes Qiskit create that file, holding
``{}``, when there is none; qdt removes such a placeholder again, so a command that finds no
account leaves the home folder as it was.

Errors: ``QiskitRuntimeService(...)`` reports a missing network as an invalid token
(``InvalidAccountError: ... check that you are using a valid API token``; the real cause is only in
the exception chain). :func:`classify_service_error` walks ``__cause__``/``__context__`` and
raises :class:`NoNetworkError`, :class:`InvalidTokenError` or :class:`IBMServiceError`.

Fractional gates (``[device] fractional_gates = true``): a real device is opened with
``use_fractional_gates=True``; real or fake, its target must then list ``rx``, or
:func:`connect_device` stops with one error naming ``device.fractional_gates``
(:mod:`qdt.executors.ibm.fractional`) before anything is transpiled or submitted.
"""

from __future__ import annotations

import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdt.errors import QdtError
from qdt.executors.ibm.fractional import basis_gates, check_native_rx, unsupported, without_fractional_gates
from qdt.executors.ibm.settings import DeviceSpec
from qdt.noise.device import fake_backend

EMPTY_ACCOUNT_FILE_BYTES = 3  # "{}" (and a newline): the file Qiskit creates when it looks for an account
_HTTP_AUTH_STATUS = (400, 401, 403)


class IBMAccountError(QdtError):
    """The IBM Quantum service could not be used with the configured account."""

    exit_status = 2  # the user fixes it (account, key, network), as bad input (see qdt.errors)


class NoAccountError(IBMAccountError):
    def __init__(self) -> None:
        super().__init__(
            "IBM Quantum account: expected QISKIT_IBM_TOKEN or a saved account, got neither "
            "(export QISKIT_IBM_TOKEN=<API key> [QISKIT_IBM_INSTANCE=<CRN>], or save one once with "
            "QiskitRuntimeService.save_account(token=..., instance=..., set_as_default=True) and "
            "chmod 600 ~/.qiskit/qiskit-ibm.json; qdt never takes a token on the command line)"
        )


class NoNetworkError(IBMAccountError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"IBM Quantum: cannot reach the service ({detail}); this is a network problem, not a token "
            "problem (check the connection, proxy or firewall, then retry)"
        )


class InvalidTokenError(IBMAccountError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"IBM Quantum: the service rejected the API key ({detail}) (create a new key at "
            "https://quantum.cloud.ibm.com, then export QISKIT_IBM_TOKEN or save the account again)"
        )


class IBMServiceError(IBMAccountError):
    pass


@dataclass
class RuntimeDevice:
    """A backend ready for transpilation and SamplerV2, and the service behind it (None when local)."""

    spec: DeviceSpec
    backend: Any  # qiskit BackendV2: a FakeBackendV2 or an IBMBackend
    service: Any | None  # QiskitRuntimeService for real devices
    _standard_target: Any = field(default=None, repr=False)  # the target without rx/rzz, once built

    def standard_target(self) -> Any:
        """The backend's target without fractional gates (built once per connection)."""
        if self._standard_target is None:
            self._standard_target = without_fractional_gates(self.backend.target)
        return self._standard_target

    @property
    def local(self) -> bool:
        return self.spec.local

    @property
    def name(self) -> str:
        return str(self.backend.name)

    @property
    def num_qubits(self) -> int:
        return int(self.backend.num_qubits)


def service_class() -> type:
    """The Runtime service class (a module-level seam: tests substitute a scripted service)."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService


def open_service(spec: DeviceSpec) -> Any:
    """``QiskitRuntimeService`` for ``spec``'s channel/instance/account; the token stays Qiskit's business."""
    from qiskit_ibm_runtime.accounts.exceptions import AccountNotFoundError

    warn_if_saved_account_readable()
    options: dict[str, str] = {}
    if spec.account:
        options["name"] = spec.account
    if spec.channel:
        options["channel"] = spec.channel
    if spec.instance:
        options["instance"] = spec.instance
    try:
        with _no_placeholder_account_file():
            return service_class()(**options)
    except AccountNotFoundError:
        raise NoAccountError() from None
    except Exception as error:  # the service's errors are classified, never shown raw
        raise classify_service_error(error) from None


@contextmanager
def _no_placeholder_account_file() -> Iterator[None]:
    """Undo the empty account file Qiskit creates when it merely looks for a saved account.

    ``QiskitRuntimeService()`` reads saved accounts through a helper that first creates
    ``~/.qiskit/qiskit-ibm.json`` holding ``{}`` (and the folder) when they are missing, even when
    it then finds no account. qdt writes nothing to the home folder that no command asked for: a
    file (and folder) that was not there before the call, and holds only that placeholder after
    it, is removed again. A file the user saved meanwhile (anything else) is kept.
    """
    path = saved_account_file().expanduser()
    file_existed = path.exists() or path.is_symlink()
    folder_existed = path.parent.exists()
    try:
        yield
    finally:
        if not file_existed:
            try:
                if path.is_file() and not path.is_symlink() and path.read_text().strip() == "{}":
                    path.unlink()
                if not folder_existed:
                    path.parent.rmdir()  # only if empty
            except OSError:
                pass


def connect_device(spec: DeviceSpec, where: str = "") -> RuntimeDevice:
    """The device ``spec`` names, checked for fractional gates when the spec asks for them.

    ``where`` prefixes the field of the fractional-gates error (a profile's file or name, "x.toml: ").
    """
    fractional_field = f"{where}device.fractional_gates"
    if spec.local:
        backend = fake_backend(spec.name, field="device.name")
        if spec.fractional_gates:
            check_native_rx(backend, fractional_field)
        return RuntimeDevice(spec=spec, backend=backend, service=None)
    service = open_service(spec)
    try:
        if spec.fractional_gates:
            backend = service.backend(spec.name, use_fractional_gates=True)
        else:
            backend = service.backend(spec.name)
    except Exception as error:
        if _exception_named(error, "QiskitBackendNotFoundError"):
            raise IBMServiceError(
                f"device.name: expected a device this account can use, got {spec.name!r} "
                "(list them with QiskitRuntimeService().backends())"
            ) from None
        if spec.fractional_gates and _exception_named(error, "IBMInputValueError"):
            # the service's own check: "Backend '...' does not support fractional gates"
            basis = _basis_without_fractional(service, spec.name)
            raise unsupported(fractional_field, spec.name, basis) from None
        raise classify_service_error(error) from None
    if spec.fractional_gates:
        check_native_rx(backend, fractional_field)
    return RuntimeDevice(spec=spec, backend=backend, service=service)


def _basis_without_fractional(service: Any, name: str) -> list[str] | None:
    """The device's basis as opened without fractional gates, for the error; None if that fails too."""
    try:
        return basis_gates(service.backend(name).target)
    except Exception:  # only for the message: the error raised is the fractional-gates one
        return None


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything behind it (``__cause__`` first, else ``__context__``), cycle-safe."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ if current.__cause__ is not None else current.__context__


def _exception_named(error: BaseException, name: str) -> bool:
    return any(type(e).__name__ == name for e in exception_chain(error))


def is_network_error(error: BaseException) -> bool:
    """A connection that never got an HTTP answer: DNS, refused, reset, TLS, timeout."""
    import requests

    for item in exception_chain(error):
        if isinstance(item, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        if isinstance(item, (socket.gaierror, ConnectionError, TimeoutError)):
            return True
        if type(item).__name__ in ("NewConnectionError", "MaxRetryError", "NameResolutionError"):
            return True
    return False


def http_status(error: BaseException) -> int | None:
    """The HTTP status code somewhere in the chain (RequestsApiError, ApiException, HTTPError)."""
    for item in exception_chain(error):
        for attribute in ("status_code", "code"):
            value = getattr(item, attribute, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
        response = getattr(item, "response", None)
        value = getattr(response, "status_code", None)
        if isinstance(value, int):
            return value
    return None


def classify_service_error(error: BaseException) -> IBMAccountError:
    """Tell "no network" from "invalid token" from anything else, by the exception chain."""
    if is_network_error(error):
        return NoNetworkError(_network_detail(error))
    status = http_status(error)
    if status in _HTTP_AUTH_STATUS:
        return InvalidTokenError(f"HTTP {status}")
    if status is not None:
        return IBMServiceError(f"IBM Quantum: the service answered HTTP {status}: {_message(error)}")
    return IBMServiceError(f"IBM Quantum: {type(error).__name__}: {_message(error)}")


def _network_detail(error: BaseException) -> str:
    for item in exception_chain(error):
        if type(item).__name__ in ("NameResolutionError", "gaierror"):
            return "the host name does not resolve"
        if isinstance(item, TimeoutError) or "timed out" in str(item).lower():
            return "the connection timed out"
        if "refused" in str(item).lower():
            return "the connection was refused"
    return "no connection"


def _message(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def saved_account_file() -> Path:
    """The file QiskitRuntimeService reads saved accounts from (fixed when qiskit-ibm-runtime is imported)."""
    try:
        from qiskit_ibm_runtime.accounts import management

        return Path(management._DEFAULT_ACCOUNT_CONFIG_JSON_FILE)
    except (ImportError, AttributeError):
        return Path("~/.qiskit/qiskit-ibm.json").expanduser()


def warn_if_saved_account_readable(path: Path | None = None) -> bool:
    """Warn (stderr) when Qiskit's saved-account file, which holds the token, is readable by others."""
    resolved = (path or saved_account_file()).expanduser()
    try:
        info = resolved.stat()
    except OSError:
        return False
    mode = info.st_mode
    if info.st_size > EMPTY_ACCOUNT_FILE_BYTES and mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"qdt: warning: {resolved} holds your IBM Quantum token and is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {resolved}",
            file=sys.stderr,
        )
        return True
    return False
