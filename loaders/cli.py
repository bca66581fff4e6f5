"""The `ciq` command line: load raw files, generate dbt files from a contract, build, summarise."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from loaders import __version__
from loaders.contract import Contract, contract_for
from loaders.errors import CiqError, LoadError
from loaders.settings import DEFAULT_DATASET, Paths

EPILOG = """examples:
  ciq init events                 copy the bundled sample into data/raw/events/
  ciq load events                 check and stage every file of data/raw/events/
  ciq load events new.csv.gz      check and stage one file
  ciq generate events             write the dbt sources, docs and tests from the contract
  ciq build events                generate, then `dbt build` on the dataset, then summarise
  ciq summary events              print the diagnostics of the last build
"""


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

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="dataset name")
        return sub

    command("init", "copy the bundled sample of a dataset into data/raw/<dataset>/ (if empty)")
    command("check", "validate contracts/<dataset>.yml and print its summary")
    load = command("load", "check raw files against the contract and stage them as Parquet")
    load.add_argument("files", nargs="*", type=Path, help="files to load (default: all raw)")
    load.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    command("generate", "write the dbt sources, docs, tests and settings from the contract")
    build = command("build", "generate, run `dbt build` for the dataset, print the results")
    build.add_argument("--target", default=None, help="dbt target (default: profile's)")
    command("summary", "print overlap and balance results of the last build")
    sample = commands.add_parser("sample", help="write a generated events dataset (CSV)")
    sample.add_argument("out", type=Path, help="output file (.csv or .csv.gz)")
    sample.add_argument("--rows", type=int, default=100_000)
    sample.add_argument("--seed", type=int, default=7)
    sample.add_argument("--scenario", default="realistic")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ciq` and `python -m loaders`; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CiqError as exc:
        if args.debug:
            raise
        print(f"ciq: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _run(args: argparse.Namespace) -> int:
    paths = Paths.from_env()
    if args.command == "sample":
        from loaders.sample_data import generate_events

        report = generate_events(args.out, args.rows, seed=args.seed, scenario=args.scenario)
        print(f"wrote {report.rows} rows to {report.path} ({report.rule_breakers} rule breakers)")
        return 0
    if args.command == "init":
        return _init(paths, args.dataset)
    contract = contract_for(args.dataset, paths.contracts)
    if args.command == "check":
        print(_describe(contract))
    elif args.command == "load":
        from loaders.staging import load_dataset

        files = [path.resolve() for path in args.files] or None
        result = load_dataset(contract, paths, files, quiet=args.quiet or _quiet())
        print(result.summary())
    elif args.command == "generate":
        from loaders.dbt_codegen import generate

        for path in generate(contract, paths):
            print(f"wrote {path.relative_to(paths.root)}")
    elif args.command == "build":
        from loaders.dbt_build import build

        build(contract, paths, target=args.target)
    elif args.command == "summary":
        from loaders.results import summary

        print(summary(contract, paths))
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
