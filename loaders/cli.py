"""The `ciq` command line: load, generate, build, summarise, report and check the set-up."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from loaders import __version__
from loaders.contract import Contract, contract_for
from loaders.errors import BuildError, CiqError, LoadError
from loaders.runlog import Step, logged_step
from loaders.settings import DEFAULT_DATASET, Paths

EPILOG = """examples:
  ciq init events                 copy the bundled sample into data/raw/events/
  ciq check events                validate contracts/events.yml
  ciq load events                 check and stage every file of data/raw/events/
  ciq load events new.csv.gz      check and stage one file
  ciq generate events             write the dbt sources, docs and tests from the contract
  ciq build events                generate, then `dbt build` on the dataset, then summarise
  ciq build events --report       the same, then write the report (also when a gate fails)
  ciq summary events              print the diagnostics of the last build
  ciq report events               write artifacts/events/report.html and report.md
  ciq snapshot events             copy the built tables to data/snapshots/<today>/events/
  ciq restore 20240105 events     replace the built tables by that day's snapshot
  ciq clean events                list what retention would compress or remove (--hard does it)
  ciq doctor                      check Python, dbt, DuckDB, disk, warehouse and PostgreSQL
  ciq publish events              build on DuckDB, move the causal tables to PostgreSQL, test
  ciq sample big.csv.gz --rows 5000000   write a large generated file to load
  ciq --debug build events        show the traceback of an error

Run `ciq COMMAND --help` for a command's options and examples.
"""
EXAMPLES = {
    "init": """examples:
  ciq init                        copy data/samples/events/ into data/raw/events/
  ciq init stores                 the same for the dataset stores (if it has a sample)
""",
    "land": """examples:
  ciq land events ~/drop/                       copy a drop folder in as one batch (today)
  ciq land events a.csv b.csv.gz --run-date 20240105 --namespace crm
  ciq land events ~/drop/ --move                move instead of copy
  ciq land events ~/drop/ --dry-run             print the plan, touch nothing
  ciq land events ~/drop/ --force               land bytes already landed once more
""",
    "stage": """examples:
  ciq stage events                              stage the latest batch of every run date
  ciq stage events --run-date 20240105          the latest batch of that run date
  ciq stage events --batch all                  every landed batch
  ciq stage events --batch <id> --force         restage one batch even if unchanged
""",
    "status": """examples:
  ciq status events                             batch, run date, rows, rejects, state, schema
  ciq status events --json                      the same as JSON
""",
    "validate": """examples:
  ciq validate                                  every batch of every dataset
  ciq validate events                           the batches of events only
""",
    "snapshot": """examples:
  ciq snapshot events                           tables of schema events -> data/snapshots/<today>/
  make snapshot DATASET=events                  the same through make
""",
    "restore": """examples:
  ciq restore 20240105 events                   replace the tables of events by that snapshot
""",
    "clean": """examples:
  ciq clean events                              list what retention would change (dry run)
  ciq clean events --archive                    compress, move old batches to data/archive/
  ciq clean events --hard                       compress, delete old batches
  ciq clean events --hard --landing-only        compress and delete old landing batches only
  CIQ_KEEP_NEWEST=5 ciq clean events            settings: contract `retention:`, else
                                                CIQ_STAGED_RETENTION_DAYS, CIQ_COMPRESS_AFTER_DAYS,
                                                CIQ_LANDING_RETENTION_DAYS, CIQ_KEEP_NEWEST
""",
    "check": """examples:
  ciq check events                validate contracts/events.yml and print its roles
""",
    "load": """examples:
  ciq load events                 check and stage every file of data/raw/events/
  ciq load events new.csv.gz      check and stage one file (others stay staged)
  ciq load events --quiet         no per-file progress lines
""",
    "generate": """examples:
  ciq generate events             write the dbt YAML, docs, tests and settings of events
""",
    "build": """examples:
  ciq build events                generate, `dbt build`, print overlap and balance
  ciq build events --report       also write artifacts/events/report.html (even when a gate
                                  fails, if the diagnostics tables were built)
  ciq build events --target ci    build into the profile's ci target
  ciq build events --target postgres
                                  load the staged rows into PostgreSQL and build staging,
                                  curated and causal_ready there (the scale-out path)
""",
    "summary": """examples:
  ciq summary events              overlap verdict and balance table of the last build
""",
    "report": """examples:
  ciq report events               write artifacts/events/report.html, report.md and the PNGs
  make report DATASET=events      the same through make
""",
    "publish": """examples:
  ciq publish events              build, then publish to PostgreSQL schema events (replace)
  ciq publish events --no-build   publish the tables of the last build as they are
  ciq publish events --mode upsert
                                  merge rows by the contract's primary key instead
  ciq publish events --schema api publish into the schema api instead of events
  CIQ_POSTGRES_DSN=postgresql://user:pw@db:5432/app ciq publish events
                                  publish to that server (else PG* variables, else the
                                  bundled server in warehouse/postgres/)
""",
    "postgres": """examples:
  ciq postgres uri                print the connection string ciq uses (starts the bundled
                                  server when no server is configured)
  psql "$(ciq postgres uri)" -c 'select * from events.ciq_published_tables'
  ciq postgres stop               stop the bundled server
""",
    "doctor": """examples:
  ciq doctor                      check this machine and project; exit 1 if something is wrong
  PGHOST=db.internal ciq doctor   also check that PostgreSQL answers (PGPORT, PGUSER, ...)
""",
    "sample": """examples:
  ciq sample big.csv.gz --rows 5000000                 a large realistic file
  ciq sample poor.csv --rows 3000 --scenario poor_overlap
  ciq sample skew.csv --scenario imbalanced --seed 3
""",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ciq",
        description="Raw files -> contract checks -> typed Parquet -> dbt -> causal-ready data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ciq {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def subcommand(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = subcommand(name, text)
        sub.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="dataset name")
        return sub

    command("init", "copy the bundled sample of a dataset into data/raw/<dataset>/ (if empty)")
    command("check", "validate contracts/<dataset>.yml and print its summary")
    land = command("land", "land files or a drop folder as an immutable batch with a manifest")
    land.add_argument("sources", nargs="+", type=Path, help="files and/or folders to land")
    land.add_argument("--namespace", default="default", help="namespace (default: default)")
    land.add_argument("--run-date", default=None, help="YYYYMMDD (default: today)")
    land.add_argument("--move", action="store_true", help="move the files instead of copying")
    land.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    land.add_argument("--force", action="store_true", help="land bytes already landed again")
    stage = command("stage", "stage landed batches into Parquet (skips batches already staged)")
    stage.add_argument("--namespace", default="default", help="namespace (default: default)")
    stage.add_argument("--run-date", default=None, help="only this run date (YYYYMMDD)")
    stage.add_argument("--batch", default="latest", help="latest (default), all, or a batch id")
    stage.add_argument("--force", action="store_true", help="restage even if unchanged")
    status = command("status", "staged batches: rows, rejects, state, schema check, issues")
    status.add_argument("--json", action="store_true", help="print JSON rows")
    command("snapshot", "copy the tables of the dataset's schema to data/snapshots/<today>/")
    restore = subcommand("restore", "replace the dataset's tables by those of a snapshot")
    restore.add_argument("date", help="the snapshot's date, YYYYMMDD")
    restore.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="dataset name")
    clean = command("clean", "retention: compress old landing parts, remove old batches")
    modes = clean.add_mutually_exclusive_group()
    for flag, text in (
        ("--dry-run", "list what would change, change nothing (the default)"),
        ("--archive", "move removed batches to data/archive/"),
        ("--hard", "delete removed batches"),
    ):
        modes.add_argument(flag, dest="mode", action="store_const", const=flag[2:], help=text)
    clean.add_argument("--landing-only", action="store_true", help="leave staged batches alone")
    validate = subcommand("validate", "check every landed batch: manifests, parts, checksums")
    validate.add_argument("dataset", nargs="?", default=None, help="one dataset (default: all)")
    load = command("load", "check raw files against the contract and stage them as Parquet")
    load.add_argument("files", nargs="*", type=Path, help="files to load (default: all raw)")
    load.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    command("generate", "write the dbt sources, docs, tests and settings from the contract")
    build = command("build", "generate, run `dbt build` for the dataset, print the results")
    build.add_argument("--target", default=None, help="dbt target (default: profile's)")
    build.add_argument(
        "--report",
        action="store_true",
        help="then write the diagnostics report, also when a gate fails",
    )
    command("summary", "print overlap and balance results of the last build")
    command(
        "report",
        "write artifacts/<dataset>/report.html (self-contained) and report.md with the "
        "pictures from the last build",
    )
    publish = command(
        "publish",
        "build on DuckDB, then move the causal tables to PostgreSQL in one transaction and "
        "build and test the publish layer there",
    )
    publish.add_argument(
        "--mode",
        choices=("replace", "upsert"),
        default="replace",
        help="replace the tables (default) or upsert rows by the contract's primary key",
    )
    publish.add_argument(
        "--schema", default=None, help="PostgreSQL schema (default: CIQ_PUBLISH_SCHEMA or dataset)"
    )
    publish.add_argument(
        "--target", default="postgres", help="dbt target of the publish layer (default postgres)"
    )
    publish.add_argument(
        "--no-build", action="store_true", help="publish the last build's tables, do not rebuild"
    )
    postgres = subcommand("postgres", "the PostgreSQL server ciq publishes to")
    postgres.add_argument(
        "action",
        choices=("uri", "stop"),
        help="uri: print its connection string; stop: stop the bundled server",
    )
    subcommand(
        "doctor",
        "check Python, dbt, DuckDB, disk space, the warehouse and PostgreSQL reachability, "
        "and say what to fix",
    )
    sample = subcommand("sample", "write a generated events dataset (CSV) with a known truth")
    sample.add_argument("out", type=Path, help="output file (.csv or .csv.gz)")
    sample.add_argument("--rows", type=int, default=100_000, help="rows (default 100000)")
    sample.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sample.add_argument(
        "--scenario",
        default="realistic",
        help="realistic (default), poor_overlap or imbalanced",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ciq` and `python -m loaders`; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        with logged_step(
            Paths.from_env().logs / "ciq.log", args.command, _dataset_of(args)
        ) as step:
            code = _run(args, step)
            step.note(exit_code=code)
            return code
    except CiqError as exc:
        if args.debug:
            raise
        print(f"ciq: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _run(args: argparse.Namespace, step: Step) -> int:
    paths = Paths.from_env()
    if args.command == "sample":
        from loaders.sample_data import generate_events

        report = generate_events(args.out, args.rows, seed=args.seed, scenario=args.scenario)
        print(f"wrote {report.rows} rows to {report.path} ({report.rule_breakers} rule breakers)")
        return 0
    if args.command == "init":
        return _init(paths, args.dataset)
    if args.command == "postgres":
        return _postgres(paths, args.action)
    if args.command == "validate":
        return _validate(paths, args.dataset)
    if args.command == "doctor":
        from loaders.doctor import diagnose, exit_code, render

        findings = diagnose(paths)
        print(render(findings, paths))
        return exit_code(findings)
    contract = contract_for(args.dataset, paths.contracts)
    if args.command == "check":
        print(_describe(contract))
    elif args.command == "land":
        _land(contract, paths, args, step)
    elif args.command == "stage":
        return _stage(contract, paths, args)
    elif args.command == "status":
        _status(contract, paths, as_json=args.json)
    elif args.command == "snapshot":
        from loaders.snapshots import snapshot

        print(snapshot(paths, contract.dataset).summary())
    elif args.command == "restore":
        from loaders.snapshots import restore

        print(restore(paths, contract.dataset, args.date).summary())
    elif args.command == "clean":
        _clean(contract, paths, args.mode or "dry-run", landing_only=args.landing_only)
    elif args.command == "load":
        from loaders.staging import load_dataset

        files = [path.resolve() for path in args.files] or None
        result = load_dataset(contract, paths, files, quiet=args.quiet or _quiet())
        step.note(
            batch="raw",
            files=len(result.files),
            rows_read=result.rows_read,
            rows_staged=result.rows_staged,
            rows_rejected=result.rows_rejected,
        )
        print(result.summary())
    elif args.command == "generate":
        from loaders.dbt_codegen import generate

        for path in generate(contract, paths):
            print(f"wrote {path.relative_to(paths.root)}")
    elif args.command == "build":
        _build(contract, paths, target=args.target, report=args.report)
    elif args.command == "publish":
        from loaders.publish import publish

        report = publish(
            contract,
            paths,
            mode=args.mode,
            schema=args.schema,
            target=args.target,
            build=not args.no_build,
        )
        print(report.summary())
    elif args.command == "report":
        from loaders.report import write_report

        print(write_report(contract, paths).summary())
    elif args.command == "summary":
        from loaders.results import summary

        print(summary(contract, paths))
    return 0


def _dataset_of(args: argparse.Namespace) -> str | None:
    return getattr(args, "dataset", None)


def _land(contract: Contract, paths: Paths, args: argparse.Namespace, step: Step) -> None:
    from loaders.landing import land, plan_landing

    plan = plan_landing(
        contract,
        paths.data,
        [source.resolve() for source in args.sources],
        namespace=args.namespace,
        run_date=args.run_date,
        force=args.force,
    )
    if not args.dry_run:
        land(contract, plan, move=args.move)
    step.note(
        batch=plan.batch_id if plan.parts else None,
        run_date=plan.run_date,
        parts=len(plan.parts),
        already_landed=len(plan.already_landed),
        dry_run=args.dry_run,
    )
    print(plan.describe(done=not args.dry_run))


def _stage(contract: Contract, paths: Paths, args: argparse.Namespace) -> int:
    from loaders.batches import select_batches, stage_batch

    chosen = select_batches(paths, contract, args.namespace, args.run_date, args.batch)
    failed = 0
    for batch in chosen:
        with logged_step(paths.logs / "ciq.log", "stage.batch", contract.dataset) as step:
            state, staged_now = stage_batch(
                contract, paths, batch, force=args.force, quiet=_quiet()
            )
            step.note(
                batch=state.batch_id,
                run_date=state.run_date,
                state=state.state,
                restaged=staged_now,
                rows=state.rows,
                rejects=state.rejects,
            )
        verb = "staged" if staged_now else "unchanged, skipped"
        print(
            f"run_date={state.run_date} batch_id={state.batch_id}: {state.state} ({verb}); "
            f"{state.rows} rows, {state.rejects} rejected"
            + (f"; {state.issues[0]}" if state.issues else "")
        )
        failed += state.state != "staged"
    return 1 if failed else 0


def _status(contract: Contract, paths: Paths, *, as_json: bool) -> None:
    import json

    from loaders.batches import status_rows, status_table

    rows = status_rows(paths, contract)
    print(json.dumps(rows, indent=2) if as_json else status_table(rows))


def _clean(contract: Contract, paths: Paths, mode: str, *, landing_only: bool) -> None:
    from loaders.retention import apply, plan_clean, report, settings_for, settings_line

    settings = settings_for(contract.retention)
    actions = plan_clean(paths, contract, settings, landing_only=landing_only)
    if mode != "dry-run":
        apply(paths, actions, archive=mode == "archive")
    print(settings_line(settings))
    print(report(paths, actions, mode=mode))


def _validate(paths: Paths, dataset: str | None) -> int:
    from loaders.landing import validate

    problems = validate(paths.data, dataset)
    for problem in problems:
        print(f"  - {problem}")
    print(f"landing zone: {len(problems)} problem(s)" if problems else "landing zone: all valid")
    return 1 if problems else 0


def _build(contract: Contract, paths: Paths, *, target: str | None, report: bool) -> None:
    """`ciq build`, then (with --report) the report, which is written even when dbt fails."""
    from loaders.dbt_build import build
    from loaders.postgres_dbt import profile_target_type

    if profile_target_type(paths, target) == "postgres":
        from loaders.postgres_build import build_on_postgres

        print(build_on_postgres(contract, paths, target=str(target)))
        if report:
            print(
                "ciq: no report on a PostgreSQL target: the diagnostics it reads are built on "
                f"DuckDB (`ciq build {contract.dataset} --report`)",
                file=sys.stderr,
            )
        return
    try:
        build(contract, paths, target=target)
    except BuildError:
        if report:
            _report_after_failure(contract, paths)
        raise
    if report:
        from loaders.report import write_report

        print(write_report(contract, paths).summary())


def _report_after_failure(contract: Contract, paths: Paths) -> None:
    from loaders.report import write_report
    from loaders.report_data import diagnostics_exist

    if not diagnostics_exist(contract, paths):
        print("ciq: no report: the diagnostics tables were not built", file=sys.stderr)
        return
    try:
        print(write_report(contract, paths).summary())
    except CiqError as exc:
        print(f"ciq: no report: {exc}", file=sys.stderr)


def _postgres(paths: Paths, action: str) -> int:
    from loaders.postgres import resolve

    if action == "stop":
        from loaders.postgres_server import stop_bundled_server

        stopped = stop_bundled_server(paths)
        print(
            "stopped the bundled PostgreSQL server"
            if stopped
            else "the bundled server is not running"
        )
        return 0
    print(resolve(paths).conninfo)
    return 0


def _quiet() -> bool:
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def _init(paths: Paths, dataset: str) -> int:
    raw, sample = paths.raw(dataset), paths.samples(dataset)
    if raw.is_dir() and any(raw.iterdir()):
        print(f"{raw.relative_to(paths.root)} already has files; left as is")
        return 0
    if not sample.is_dir():
        raise LoadError(f"{raw}: no raw files and no bundled sample in {sample}")
    raw.mkdir(parents=True, exist_ok=True)
    for source in sorted(sample.iterdir()):
        if source.is_file():
            shutil.copy2(source, raw / source.name)
    print(f"copied the sample {sample.relative_to(paths.root)} -> {raw.relative_to(paths.root)}")
    return 0


def _describe(contract: Contract) -> str:
    key = ", ".join(contract.primary_key)
    return "\n".join(
        [
            f"{contract.path}: valid",
            f"  columns:    {', '.join(contract.column_names)}",
            f"  treatment:  {contract.treatment_col}   outcome: {contract.outcome_col}",
            f"  covariates: {', '.join(contract.covariate_cols)}",
            f"  key:        {key}   estimand: {contract.estimand}",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
