"""``qdt jobs list|status|fetch --run DIR [JOB_ID]``: Runtime jobs of a run, after the fact.

Reads DIR/jobs.jsonl (every job id is written there before qdt waits for it) and never submits.
  list    what the store knows: id, device, submitted, latest status, result saved or not
  status  the service's current status of cloud jobs (the store's for local ones)
  fetch   saves finished results as DIR/jobs/<id>.json (cloud: asks the service; --wait waits up
          to the job's timeout). A local-testing-mode job lives inside the process that submitted
          it: if that process ended before the job completed, fetch reports it LOST (exit 1) and
          tells you to run `qdt infer` again; results of local jobs that completed were saved then.
JSON (--json): list → {"jobs": [{job_id, status, device, local, submitted, updated, saved, message}],
"unresolved_submissions": [...]}; status/fetch → {"jobs": [{job_id, status, saved, message}]}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="list, check and fetch the IBM Runtime jobs of a run (never resubmits)",
        description=(
            "Jobs that survive a crash: `qdt infer` writes every job id to RUN/jobs.jsonl before "
            "waiting for it. These commands read that file; `fetch` saves finished results to "
            "RUN/jobs/<id>.json without submitting anything, so `qdt infer --resume` can reuse them."
        ),
    )
    actions = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    for name, text in (
        ("list", "every job the run submitted, with its stored status"),
        ("status", "the current status of the run's unfinished jobs (asks the service)"),
        ("fetch", "save finished results of the run's jobs (asks the service; never resubmits)"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--run", type=Path, required=True, metavar="DIR", help="run folder (holds jobs.jsonl)"
        )
        if name != "list":
            action.add_argument(
                "job_id", nargs="?", metavar="JOB_ID", help="one job (default: all unfinished)"
            )
        if name == "fetch":
            action.add_argument(
                "--wait", action="store_true", help="wait for unfinished jobs (up to their timeout)"
            )
            action.add_argument("--timeout", type=float, metavar="S", help="with --wait: qdt's limit per job")
        action.add_argument("--json", action="store_true", help="print one JSON object")
        action.set_defaults(handler={"list": _cmd_list, "status": _cmd_status, "fetch": _cmd_fetch}[name])


def _store(run: Path) -> Any:
    from qdt.executors.ibm.jobs import JobStore

    if not run.is_dir():
        raise QdtInputError("--run", "an existing run folder", str(run), "check the path")
    store = JobStore(run)
    if not store.jobs_path.is_file():
        raise QdtInputError(
            "--run",
            f"a folder with {store.jobs_path.name} (written by `qdt infer`)",
            str(run),
            "run `qdt infer --run DIR --backend fake_<device>|ibm_<device>` on it first",
        )
    return store


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args.run)
    rows = []
    for record in store.records().values():
        rows.append(
            {
                "job_id": record.job_id,
                "status": record.status,
                "device": record.submitted.get("backend"),
                "local": record.local,
                "submitted": record.submitted.get("time"),
                "updated": record.updated,
                "saved": store.result_path(record.job_id).is_file(),
                "message": record.message,
            }
        )
    orphans = [{"tag": e.get("tag"), "time": e.get("time")} for e in store.pending_tags()]
    if args.json:
        json.dump({"jobs": rows, "unresolved_submissions": orphans}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = [
        [
            r["job_id"],
            r["device"],
            "local" if r["local"] else "cloud",
            r["submitted"],
            r["status"],
            "yes" if r["saved"] else "-",
        ]
        for r in rows
    ]
    print(format_table(["job", "device", "where", "submitted", "status", "result saved"], table))
    for orphan in orphans:
        print(
            f"submission {orphan['tag']} at {orphan['time']} has no job id (qdt stopped during it); "
            "`qdt jobs fetch` looks it up by tag"
        )
    return 0


def _targets(store: Any, job_id: str | None) -> list[str]:
    if job_id is not None:
        store.get(job_id)  # unknown ids are refused, naming the file
        return [job_id]
    return [
        r.job_id
        for r in store.records().values()
        if not store.result_path(r.job_id).is_file() and r.status != "LOST"
    ]


def _cmd_status(args: argparse.Namespace) -> int:
    from qdt.executors.ibm.jobs import live_status

    store = _store(args.run)
    outcomes = [live_status(store, job_id).to_dict() for job_id in _targets(store, args.job_id)]
    return _print_outcomes(outcomes, args.json, failed=0)


def _cmd_fetch(args: argparse.Namespace) -> int:
    from qdt.executors.ibm.jobs import JobError, adopt_orphans, fetch_job

    store = _store(args.run)
    if args.job_id is None:
        adopt_orphans(store)
    targets = _targets(store, args.job_id)
    outcomes, failed = [], 0
    for job_id in targets:
        try:
            outcomes.append(fetch_job(store, job_id, wait=args.wait, timeout_s=args.timeout).to_dict())
        except JobError as error:
            if args.job_id is not None:
                raise
            failed += 1
            status = store.get(job_id).status
            outcomes.append({"job_id": job_id, "status": status, "saved": False, "message": str(error)})
    return _print_outcomes(outcomes, args.json, failed)


def _print_outcomes(outcomes: list[dict[str, Any]], as_json: bool, failed: int) -> int:
    if as_json:
        json.dump({"jobs": outcomes}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not outcomes:
        print("no unfinished jobs")
    else:
        for outcome in outcomes:
            print(f"{outcome['job_id']}: {outcome['status']} - {outcome['message']}")
    return 1 if failed else 0
