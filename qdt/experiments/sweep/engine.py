"""Run a sweep's cells as Ray tasks, with resume, retries and one result row per cell.

The driver (this module) is the only writer of ``results.csv``. For each cell it decides:
  * a row with status ok (or failed, unless ``retry_failed``): done, not run again;
  * no valid config or instance: a failed row at once, no task;
  * a finished run folder (summary.json of the same config) but no row, as after a driver killed
    between the two: its row is written from the folder, no task;
  * otherwise a task :func:`qdt.experiments.sweep.worker.run_cell`, which resumes from the cell's checkpoint
    if there is one.
A task whose worker died (killed, out of memory) or whose cell raised anything but a
:class:`~qdt.errors.QdtError` is submitted again, up to ``max_retries`` more times; a QdtError
(bad input, diverged training) is deterministic and fails the cell at once. At most
``max_parallel`` tasks are in flight.

The sweep folder must be new, empty, or a sweep folder already (it holds ``sweep.json``: the
same command run again resumes it); a folder holding only ``cells/`` is taken too (cell folders
are named by a hash of their run, so nothing of a user's is written over). A folder holding
anything else is refused, naming what it holds. The driver holds the folder's lock
(:func:`qdt.files.hold_folder`) for the whole sweep: a second driver on the same folder is
refused with the first one's pid; the lock of a driver that was killed is taken over with a
notice. Each cell's worker holds its cell folder's lock the same way, waiting for it rather than
refusing (see :mod:`qdt.experiments.sweep.worker`).

Without an address, qdt starts an embedded Ray on this machine (``num_cpus = max_parallel`` or
the core count, no dashboard, a token of its own kept in the environment, never in the home
folder) and stops it at the end; with one it connects to that cluster, whose nodes must have qdt
installed and see ``out_dir`` at the same path (a shared filesystem). Three address forms, each
tested against a real ``ray start --head`` with Ray's token authentication
(``tests/test_ray_cluster.py``): ``host:port`` of the head's GCS (``ray start --head --port``),
``ray://host:port`` of its Ray Client server (``--ray-client-server-port``, 10001 by default), and
``auto`` (``$RAY_ADDRESS``, else the one cluster running on this machine). A cluster with token
authentication needs its token on this machine (``~/.ray/auth_token``, ``$RAY_AUTH_TOKEN_PATH`` or
``$RAY_AUTH_TOKEN``); qdt then turns token authentication on for every form, which Ray itself
does only for ``auto`` (:func:`_ray_environment`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.experiments.sweep.cell import CELLS_DIR, Cell, cell_dir, finished_summary, read_attempts
from qdt.experiments.sweep.report import plot_gaps, plot_rewards, summarize, summary_text, write_summary
from qdt.experiments.sweep.spec import SweepSpec, expand_cells, load_spec, parse_spec
from qdt.experiments.sweep.table import RESULTS_FILE, STATUS_FAILED, STATUS_OK, SUMMARY_KEYS, ResultsTable
from qdt.files import FolderRule, check_output_folder, claim_output_folder, write_json_atomic

MANIFEST_FILE = "sweep.json"
MANIFEST_FORMAT = "qdt-sweep/1"

OnResult = Callable[[Cell, Mapping[str, Any]], None]


@dataclass
class SweepResult:
    out_dir: Path
    rows: list[dict[str, Any]]  # one per cell of this sweep, in cell order
    summary: list[dict[str, Any]]  # one per configuration (over seeds)
    files: list[Path] = field(default_factory=list)
    ran: int = 0  # cells that got a task in this call
    failed: int = 0  # cells whose row says failed
    wall_s: float = 0.0

    def summary_table(self, markdown: bool = False) -> str:
        return summary_text(self.summary, markdown=markdown)


def run_sweep(
    spec: SweepSpec | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    max_parallel: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    max_retries: int | None = None,
    on_result: OnResult | None = None,
) -> SweepResult:
    """Expand a spec (a SweepSpec, a parsed TOML mapping, or a TOML path) and run its cells."""
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif not isinstance(spec, SweepSpec):
        spec = parse_spec(spec)
    return run_cells(
        expand_cells(spec),
        out_dir,
        name=spec.name,
        ray_address=ray_address,
        max_parallel=max_parallel,
        progress=progress,
        retry_failed=retry_failed,
        max_retries=spec.max_retries if max_retries is None else max_retries,
        on_result=on_result,
        manifest={"spec": spec.describe()},
        extra_axes=[key for key, _ in spec.axes if key not in Cell.STANDARD_AXES],
    )


def run_cells(
    cells: Sequence[Cell],
    out_dir: str | Path,
    *,
    name: str = "sweep",
    ray_address: str | None = None,
    max_parallel: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    max_retries: int = 2,
    on_result: OnResult | None = None,
    manifest: Mapping[str, Any] | None = None,
    extra_axes: Sequence[str] = (),
    field: str = "--out",
) -> SweepResult:
    """Run cells (from :func:`expand_cells` or :func:`qdt.experiments.sweep.make_cell`) into ``out_dir``.

    ``field`` names ``out_dir`` in errors (a bench's ``--runs``)."""
    start = time.perf_counter()
    if max_parallel is not None and (
        not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1
    ):
        raise QdtInputError("--max-parallel", "an integer >= 1", max_parallel)
    if len({cell.cell_id for cell in cells}) != len(cells):
        raise QdtInputError("cells", "cells with distinct ids", "repeated cells", "merge duplicates first")
    out = Path(out_dir).resolve()
    with claim_output_folder(out, field, SWEEP_FOLDER):
        _write_manifest(out, name, cells, manifest)
        table = ResultsTable(out / RESULTS_FILE)
        pending = _settle_known(cells, out, table, retry_failed, on_result)
        bar = _progress(progress, len(cells), len(cells) - len(pending), name)
        try:
            if pending:
                failed_before = sum(
                    table.rows[c.cell_id]["status"] == STATUS_FAILED for c in cells if c.cell_id in table.rows
                )
                scheduler = _Scheduler(out, table, bar, max_retries, on_result, failed_before)
                scheduler.run(pending, ray_address, max_parallel)
        finally:
            if bar is not None:
                bar.close()
        rows = [table.rows[cell.cell_id] for cell in cells]
        summary = summarize(rows, extra_axes)
        files = [out / RESULTS_FILE, *write_summary(out, summary, name)]
        for plot in (plot_gaps(out, summary, name), plot_rewards(out, rows, summary, name, extra_axes)):
            if plot is not None:
                files.append(plot)
    return SweepResult(
        out_dir=out,
        rows=rows,
        summary=summary,
        files=files,
        ran=len(pending),
        failed=sum(row["status"] == STATUS_FAILED for row in rows),
        wall_s=time.perf_counter() - start,
    )


def is_sweep_folder(path: Path) -> bool:
    """Whether ``path`` holds the manifest a sweep writes first (so the folder is a sweep's)."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


SWEEP_FOLDER = FolderRule(
    expected=f"a new or empty folder, or a sweep folder (one holding {MANIFEST_FILE})",
    allowed=frozenset({CELLS_DIR}),
    accept=is_sweep_folder,
)


def check_sweep_folder(out_dir: str | Path, field: str = "--out") -> Path:
    """Refuse, before any work and writing nothing, a sweep folder :func:`run_cells` would refuse."""
    return check_output_folder(out_dir, field, SWEEP_FOLDER)


def cell_status(cells: Sequence[Cell], out_dir: str | Path) -> list[str]:
    """Per cell: ok, failed (a row says so), invalid, resumable (a checkpoint), or pending."""
    return [status for status, _ in cell_states(cells, out_dir)]


def cell_states(cells: Sequence[Cell], out_dir: str | Path) -> list[tuple[str, str | None]]:
    """Per cell: its :func:`cell_status` and why, for a cell that cannot run or failed (the
    reason it is invalid, or the error its row records); None otherwise."""
    out = Path(out_dir)
    table = ResultsTable(out / RESULTS_FILE) if (out / RESULTS_FILE).exists() else None
    states: list[tuple[str, str | None]] = []
    for cell in cells:
        row = table.get(cell.cell_id) if table is not None else None
        if row is not None:
            error = row.get("error")
            states.append((str(row["status"]), None if error in (None, "") else str(error)))
        elif not cell.runnable:
            states.append(("invalid", cell.problem))
        elif (cell_dir(out, cell.cell_id) / "checkpoint.pt").exists():
            states.append(("resumable", None))
        else:
            states.append(("pending", None))
    return states


# ---- rows ------------------------------------------------------------------------------------
def ok_row(out: Path, cell: Cell, outcome: Mapping[str, Any]) -> dict[str, Any]:
    summary = outcome["summary"]
    row = _base_row(out, cell, STATUS_OK)
    row.update({key: summary.get(key) for key in SUMMARY_KEYS})
    row.update(
        attempts=outcome.get("attempts"),
        cell_wall_s=outcome.get("cell_wall_s"),
        config=summary.get("config"),
    )
    return row


def failed_row(out: Path, cell: Cell, error: str, attempts: int) -> dict[str, Any]:
    row = _base_row(out, cell, STATUS_FAILED)
    row.update(error=error, attempts=attempts, config=cell.config.to_dict() if cell.config else None)
    return row


def _base_row(out: Path, cell: Cell, status: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cell_id": cell.cell_id, "status": status, "instance": cell.instance_label}
    row.update(cell.axes)
    if cell.instance is not None:
        row.update(n_users=cell.instance.n_users, n_servers=cell.instance.n_servers)
    if cell.runnable:
        row["run_dir"] = str(cell_dir(out, cell.cell_id).relative_to(out))
    return row


def _settle_known(
    cells: Sequence[Cell], out: Path, table: ResultsTable, retry_failed: bool, on_result: OnResult | None
) -> list[Cell]:
    """Record what needs no task; return the cells that do."""
    pending = []
    for cell in cells:
        row = table.get(cell.cell_id)
        if row is not None and (row["status"] == STATUS_OK or not retry_failed):
            continue
        if not cell.runnable:
            new_row = failed_row(out, cell, cell.problem or "invalid cell", attempts=0)
        else:
            assert cell.config is not None and cell.instance is not None
            folder = cell_dir(out, cell.cell_id)
            summary = finished_summary(folder, cell.config, cell.instance)
            if summary is None:
                pending.append(cell)
                continue
            outcome = {"summary": summary, "attempts": len(read_attempts(folder)), "cell_wall_s": None}
            new_row = ok_row(out, cell, outcome)
        table.put(new_row)
        if on_result is not None:
            on_result(cell, new_row)
    return pending


# ---- Ray -------------------------------------------------------------------------------------
class _Scheduler:
    def __init__(
        self,
        out: Path,
        table: ResultsTable,
        bar: Any,
        max_retries: int,
        on_result: OnResult | None,
        failed: int = 0,
    ) -> None:
        self.out = out
        self.table = table
        self.bar = bar
        self.max_retries = max_retries
        self.on_result = on_result
        self.failed = failed  # cells of this sweep recorded as failed, for the progress bar

    def run(self, cells: list[Cell], ray_address: str | None, max_parallel: int | None) -> None:
        import ray

        from qdt.experiments.sweep.worker import run_cell

        if self.bar is not None:
            self.bar.set_postfix_str(
                "starting Ray" if ray_address is None else f"connecting to {ray_address}"
            )
        with ray_session(ray_address, max_parallel) as capacity:
            limit = max_parallel or capacity
            queue: deque[tuple[Cell, int]] = deque((cell, 0) for cell in cells)
            in_flight: dict[Any, tuple[Cell, int]] = {}
            task = ray.remote(run_cell)
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < limit:
                        cell, retries = queue.popleft()
                        assert cell.config is not None and cell.instance is not None
                        ref = task.options(num_cpus=cell.config.threads, max_retries=0).remote(
                            cell.config.to_dict(),
                            cell.instance.to_dict(),
                            str(cell_dir(self.out, cell.cell_id)),
                        )
                        in_flight[ref] = (cell, retries)
                    self._postfix(len(in_flight))
                    done, _ = ray.wait(list(in_flight), num_returns=1)
                    for ref in done:
                        cell, retries = in_flight.pop(ref)
                        retry = self._collect(ref, cell, retries)
                        if retry:
                            queue.append((cell, retries + 1))
            finally:
                for ref in in_flight:
                    ray.cancel(ref, force=True)

    def _collect(self, ref: Any, cell: Cell, retries: int) -> bool:
        """Record the task's outcome; True when the cell should be tried again."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            outcome = ray.get(ref)
        except RayTaskError as error:  # raised outside run_cell's own handler
            message = f"{type(error.cause).__name__}: {error.cause}"
            retryable = True
        except RayError as error:  # the worker died, or its node
            message = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            retryable = True
        else:
            if "error" not in outcome:
                self._record(cell, ok_row(self.out, cell, outcome))
                return False
            message, retryable = str(outcome["error"]), bool(outcome["retryable"])
        if retryable and retries < self.max_retries:
            self._say(f"cell {cell.cell_id}: {message}; retry {retries + 1} of {self.max_retries}")
            return True
        attempts = max(len(read_attempts(cell_dir(self.out, cell.cell_id))), retries + 1)
        self.failed += 1
        self._say(f"cell {cell.cell_id} failed: {message}")
        self._record(cell, failed_row(self.out, cell, message, attempts))
        return False

    def _record(self, cell: Cell, row: dict[str, Any]) -> None:
        self.table.put(row)
        if self.bar is not None:
            self.bar.update(1)
        if self.on_result is not None:
            self.on_result(cell, row)

    def _postfix(self, running: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix(running=running, failed=self.failed, refresh=True)

    def _say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        else:
            logging.getLogger("qdt.experiments.sweep").warning(message)


@contextmanager
def ray_session(address: str | None, max_parallel: int | None) -> Iterator[int]:
    """Connect to (or start) Ray; yields the number of task slots (CPUs). Stops what it started."""
    import ray

    if ray.is_initialized():  # the caller's session (tests, notebooks): used, left running
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "configure_logging": True,
    }
    with _ray_environment(address):
        if address is None:
            ray.init(address="local", num_cpus=max_parallel or os.cpu_count() or 1, **options)
        else:
            _check_reachable(address)
            _connect(ray, address, options)
        try:
            yield max(1, int(ray.cluster_resources().get("CPU", 1)))
        finally:
            ray.shutdown()


RAY_TOKEN_SOURCES = "~/.ray/auth_token, $RAY_AUTH_TOKEN_PATH or $RAY_AUTH_TOKEN"


def _connect(ray: Any, address: str, options: Mapping[str, Any]) -> None:
    """``ray.init(address)``; a failure is one QdtInputError naming ``--ray-address`` and the cause.

    While Ray connects, file descriptor 2 goes to a temporary file: Ray's C++ core writes a warning
    to it for every retry (a cluster that refuses the token retries for about 20 s), and the
    command's failure must stay one line. What Ray wrote there tells a refused token apart.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings():  # Ray's Python warnings would add lines too
                warnings.simplefilter("ignore")
                ray.init(address=address, **options)
            return
        except Exception as error:  # noqa: BLE001 - any failure to connect is the same user problem
            failure: BaseException = error
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        said = sink.read().decode("utf-8", errors="replace")
    expected = (
        "the address of a running Ray cluster you can reach (host:port of its head, ray://host:port "
        "of its client server, or auto)"
    )
    if "InvalidAuthToken" in said or "Unauthenticated" in said:
        what = "this machine's token" if ray_token_available() else "a connection without a token"
        raise QdtInputError(
            "--ray-address",
            expected,
            f"{address}, which refused {what}",
            f"the cluster uses token authentication: copy its token (`ray get-auth-token` on the head) "
            f"to {RAY_TOKEN_SOURCES}",
        )
    raise QdtInputError(
        "--ray-address",
        expected,
        address,
        f"Ray said: {_first_line(failure)}; if the cluster uses token authentication (Ray's default), "
        f"this machine needs its token: {RAY_TOKEN_SOURCES}",
    )


def ray_token_available() -> bool:
    """Whether this machine has a Ray authentication token where Ray looks for one
    (:data:`RAY_TOKEN_SOURCES`)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    paths = [Path.home() / ".ray" / "auth_token"]
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        paths.append(Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser())
    return any(path.is_file() for path in paths)


RAY_SESSION_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
"""Ray's authentication settings in the environment, restored after every session whoever set
them (:func:`_ray_environment`)."""


@contextmanager
def _ray_environment(address: str | None) -> Iterator[None]:
    """Ray's token authentication for this session, set through the environment and restored after.

    * A cluster at an address: Ray turns token authentication on by itself only for a cluster it
      finds on its own (``auto``), so a cluster started with ``ray start --head`` (token
      authentication on, Ray's default when a token exists) refused ``host:port`` and
      ``ray://``. With a token on this machine and ``RAY_AUTH_MODE`` unset, qdt turns it on for
      every address form.
    * The embedded cluster: Ray turns token authentication on and, with no token anywhere, saves
      a new one to ``~/.ray/auth_token``. qdt writes nothing to the home folder that no command
      asked for, so it gives that cluster a token of its own, in the environment only.
    ``RAY_AUTH_MODE`` set by the user is left alone either way. Ray 2.60 sets ``RAY_AUTH_MODE``
    itself when it starts a cluster and leaves it set; restored after the session, it cannot make
    the next session in the same process look as if the user had set it (that session's embedded
    cluster then got no token and its GCS stopped: "Token authentication is enabled but Ray
    couldn't find an authentication token").
    """
    changes: dict[str, str] = {}
    if "RAY_AUTH_MODE" not in os.environ:
        if address is None and not ray_token_available():
            changes["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        elif address is not None and ray_token_available():
            changes["RAY_AUTH_MODE"] = "token"
    saved = {key: os.environ.get(key) for key in (*RAY_SESSION_VARIABLES, *changes)}
    os.environ.update(changes)
    _reload_ray_config()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reload_ray_config()


def _reload_ray_config() -> None:
    """Make an imported Ray read its settings (``RAY_AUTH_MODE``) from the environment again."""
    try:
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # noqa: BLE001 - an older or newer Ray reads the environment when it starts
        pass


def _first_line(error: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a host:port where nothing listens (Ray itself waits minutes, then gives up)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms Ray resolves itself
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise QdtInputError(
            "--ray-address",
            "the address of a running Ray cluster (host:port of its head, or ray://host:port)",
            address,
            f"nothing answers there ({error}); start one with `ray start --head`, or omit --ray-address "
            "to run on this machine",
        ) from None


# ---- driver bookkeeping ----------------------------------------------------------------------
def _write_manifest(out: Path, name: str, cells: Sequence[Cell], extra: Mapping[str, Any] | None) -> None:
    data = {
        "format": MANIFEST_FORMAT,
        "name": name,
        **(extra or {}),
        "cells": [
            {
                "cell_id": cell.cell_id,
                "instance": cell.instance_label,
                "axes": dict(cell.axes),
                **({"problem": cell.problem} if cell.problem else {}),
            }
            for cell in cells
        ],
    }
    write_json_atomic(out / MANIFEST_FILE, json.loads(json.dumps(data, default=str)))


def _progress(enabled: bool, total: int, done: int, name: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"sweep {name}", unit="cell")
