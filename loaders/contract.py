"""Read and validate `contracts/<dataset>.yml`, the single source of truth of a dataset."""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from loaders.errors import ContractError

# Contract type -> DuckDB type. The keys are the only type names a contract may use.
DUCKDB_TYPES: dict[str, str] = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "category": "VARCHAR",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}
NUMERIC_TYPES = frozenset({"int8", "int16", "int32", "int64", "float32", "float64"})
INTEGER_TYPES = frozenset({"int8", "int16", "int32", "int64"})
TEXT_TYPES = frozenset({"string", "category"})
ORDERED_TYPES = NUMERIC_TYPES | {"date", "datetime"}

TEAM_KEYS = {
    "id_col",
    "time_col",
    "treatment_col",
    "outcome_col",
    "covariate_cols",
    "types",
    "constraints",
    "leakage_forbidden_cols",
}
CIQ_KEYS = {
    "description",
    "primary_key",
    "estimand",
    "sentinels",
    "normalise",
    "fills",
    "thresholds",
    "rejects",
    "columns",
    "csv",
    "tsv",
    "xlsx",
    "jsonl",
    "encoding",
    "limits",
    "retention",
    "on_new_columns",
}
CONSTRAINT_KEYS = {"not_null", "categories", "ranges"}
THRESHOLD_KEYS = {"overlap_bounds", "min_overlap_share", "max_abs_smd"}
REJECT_KEYS = {"max_rows", "max_share"}
NORMALISE_KEYS = {"case", "trim", "fallback"}
CSV_KEYS = {"delimiter", "quote", "escape", "skip_rows"}
XLSX_KEYS = {"sheet", "skip_rows"}
JSONL_KEYS = {"paths"}
LIMIT_KEYS = {"max_file_bytes", "max_columns", "max_field_length"}
RETENTION_KEYS = {"staged_days", "compress_after_days", "delete_after_days", "keep_newest"}
COLUMN_KEYS = {"description"}
ESTIMANDS = ("ate", "att")
NEW_COLUMN_POLICIES = ("fail", "ignore", "append")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])+$")


@dataclass(frozen=True)
class Normalisation:
    """How a text column is normalised before its categories are checked."""

    case: str = "none"  # upper | lower | none
    trim: bool = True
    fallback: str | None = None


@dataclass(frozen=True)
class Column:
    """One column of a dataset as the contract declares it."""

    name: str
    type: str
    description: str
    role: str  # id | time | treatment | outcome | covariate | attribute
    not_null: bool
    categories: tuple[str, ...] | None
    value_range: tuple[float, float] | None
    sentinels: tuple[Any, ...]
    normalisation: Normalisation | None
    fill: Any

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]

    @property
    def is_categorical(self) -> bool:
        return self.type in TEXT_TYPES


@dataclass(frozen=True)
class Thresholds:
    """Gates of the causal diagnostics (dbt vars default from these)."""

    overlap_lower: float = 0.05
    overlap_upper: float = 0.95
    min_overlap_share: float = 0.6
    max_abs_smd: float = 0.1


@dataclass(frozen=True)
class CsvOptions:
    """How the dataset's delimited text files are written (csv and tsv each have their own)."""

    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    skip_rows: int = 0  # lines before the header line


@dataclass(frozen=True)
class XlsxOptions:
    """Which worksheet holds the data and where its header row is."""

    sheet: str | int = 0  # a sheet name, or a 0-based sheet index
    skip_rows: int = 0  # rows before the header row


@dataclass(frozen=True)
class Limits:
    """Refuse files or values beyond these sizes."""

    max_file_bytes: int | None = None
    max_columns: int = 1000
    max_field_length: int = 1_000_000


@dataclass(frozen=True)
class Retention:
    """`ciq clean` settings the contract sets; None: the environment variable or the default."""

    staged_days: int | None = None
    compress_after_days: int | None = None
    delete_after_days: int | None = None
    keep_newest: int | None = None


@dataclass(frozen=True)
class Contract:
    """A validated dataset contract."""

    dataset: str
    path: Path
    sha256: str
    description: str
    columns: tuple[Column, ...]
    id_col: str
    time_col: str | None
    treatment_col: str
    outcome_col: str
    covariate_cols: tuple[str, ...]
    primary_key: tuple[str, ...]
    estimand: str
    thresholds: Thresholds
    leakage_patterns: tuple[str, ...]
    max_rejected_rows: int
    max_rejected_share: float | None
    csv: CsvOptions
    tsv: CsvOptions
    xlsx: XlsxOptions
    jsonl_paths: dict[str, str]
    encoding: str
    limits: Limits
    retention: Retention = Retention()
    on_new_columns: str = "fail"  # fail | ignore | append: columns a file has and 'types' lacks

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        """The column called `name` (KeyError if the contract has none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def causal_columns(self) -> tuple[str, ...]:
        """Columns of causal_ready: id, time, treatment, outcome, covariates (and key parts)."""
        roles = [self.id_col, self.time_col, *self.primary_key]
        ordered = [*roles, self.treatment_col, self.outcome_col, *self.covariate_cols]
        seen: dict[str, None] = {}
        for name in ordered:
            if name is not None:
                seen.setdefault(name, None)
        return tuple(seen)

    def leakage_pattern(self, column_name: str) -> str | None:
        """The deny-list pattern a column name matches, if any (case-insensitive)."""
        for pattern in self.leakage_patterns:
            if fnmatch.fnmatchcase(column_name.lower(), pattern.lower()):
                return pattern
        return None


def load_contract(path: Path) -> Contract:
    """Parse and validate a contract file; every problem is a ContractError naming the file."""
    if not path.is_file():
        raise ContractError(f"{path}: no such contract file")
    raw_text = path.read_bytes()
    try:
        document = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{path}: a contract is a YAML mapping of keys to values")
    dataset = path.name.removesuffix(".yml").removesuffix(".yaml")
    if not DATASET_NAME.match(dataset):
        raise ContractError(
            f"{path}: dataset name {dataset!r} must be lower-case letters, digits and '_' "
            "(it becomes a schema name)"
        )
    return _ContractParser(path, dataset, document, hashlib.sha256(raw_text).hexdigest()).parse()


class _ContractParser:
    """Turns a contract mapping into a Contract, collecting precise error messages."""

    def __init__(self, path: Path, dataset: str, document: dict[str, Any], sha256: str) -> None:
        self.path = path
        self.dataset = dataset
        self.doc = document
        self.sha256 = sha256

    def fail(self, message: str) -> ContractError:
        return ContractError(f"{self.path}: {message}")

    def check_keys(self, mapping: Any, allowed: set[str], where: str) -> dict[str, Any]:
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            raise self.fail(f"{where} must be a mapping")
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                listing = ", ".join(sorted(allowed))
                raise self.fail(f"unknown key {key!r} in {where}{suggestion}; allowed: {listing}")
        return dict(mapping)

    def parse(self) -> Contract:
        doc = self.check_keys(self.doc, TEAM_KEYS | CIQ_KEYS, "the contract")
        types = self.parse_types(doc.get("types"))
        roles = self.parse_roles(doc, types)
        constraints = self.check_keys(doc.get("constraints"), CONSTRAINT_KEYS, "constraints")
        not_null = set(
            self.column_list(constraints.get("not_null", []), types, "constraints.not_null")
        )
        categories = self.parse_categories(constraints.get("categories"), types)
        ranges = self.parse_ranges(constraints.get("ranges"), types)
        sentinels = self.parse_sentinels(doc.get("sentinels"), types)
        normalisation = self.parse_normalisation(doc.get("normalise"), types)
        fills = self.parse_fills(doc.get("fills"), types)
        descriptions = self.parse_descriptions(doc.get("columns"), types)
        leakage = self.parse_leakage(doc.get("leakage_forbidden_cols", []), types)
        primary_key = self.parse_primary_key(doc.get("primary_key"), roles, types)
        role_of = {roles["id_col"]: "id", roles["treatment_col"]: "treatment"}
        role_of[roles["outcome_col"]] = "outcome"
        if roles["time_col"]:
            role_of[roles["time_col"]] = "time"
        for name in roles["covariate_cols"]:
            role_of[name] = "covariate"
        columns = tuple(
            Column(
                name=name,
                type=type_name,
                description=descriptions.get(name, ""),
                role=role_of.get(name, "attribute"),
                not_null=name in not_null or name in primary_key,
                categories=categories.get(name),
                value_range=ranges.get(name),
                sentinels=sentinels.get(name, ()),
                normalisation=normalisation.get(name),
                fill=fills.get(name),
            )
            for name, type_name in types.items()
        )
        rejects = self.check_keys(doc.get("rejects"), REJECT_KEYS, "rejects")
        return Contract(
            dataset=self.dataset,
            path=self.path,
            sha256=self.sha256,
            description=str(doc.get("description") or f"The {self.dataset} dataset.").strip(),
            columns=columns,
            id_col=roles["id_col"],
            time_col=roles["time_col"],
            treatment_col=roles["treatment_col"],
            outcome_col=roles["outcome_col"],
            covariate_cols=tuple(roles["covariate_cols"]),
            primary_key=primary_key,
            estimand=self.parse_estimand(doc.get("estimand", "ate")),
            thresholds=self.parse_thresholds(doc.get("thresholds")),
            leakage_patterns=leakage,
            max_rejected_rows=self.non_negative_int(rejects.get("max_rows", 0), "rejects.max_rows"),
            max_rejected_share=self.optional_share(rejects.get("max_share"), "rejects.max_share"),
            csv=self.parse_csv(doc.get("csv"), "csv", CsvOptions()),
            tsv=self.parse_csv(doc.get("tsv"), "tsv", CsvOptions(delimiter="\t")),
            xlsx=self.parse_xlsx(doc.get("xlsx")),
            jsonl_paths=self.parse_jsonl(doc.get("jsonl"), types),
            encoding=self.parse_encoding(doc.get("encoding", "utf-8")),
            limits=self.parse_limits(doc.get("limits")),
            retention=self.parse_retention(doc.get("retention")),
            on_new_columns=self.parse_on_new_columns(doc.get("on_new_columns", "fail")),
        )

    def parse_types(self, types: Any) -> dict[str, str]:
        if not isinstance(types, Mapping) or not types:
            raise self.fail("'types' must map every column name to a type")
        parsed: dict[str, str] = {}
        for name, type_name in types.items():
            if not isinstance(name, str) or not IDENTIFIER.match(name):
                raise self.fail(
                    f"column name {name!r} in types must start with a letter or '_' and contain "
                    "only letters, digits and '_'"
                )
            if type_name not in DUCKDB_TYPES:
                raise self.fail(
                    f"column {name!r} has unknown type {type_name!r}; "
                    f"valid types: {', '.join(DUCKDB_TYPES)}"
                )
            parsed[name] = type_name
        return parsed

    def column_ref(self, name: Any, types: dict[str, str], where: str) -> str:
        if name not in types:
            raise self.fail(f"{where} names column {name!r}, which is not declared in 'types'")
        return str(name)

    def column_list(self, names: Any, types: dict[str, str], where: str) -> list[str]:
        if not isinstance(names, list):
            raise self.fail(f"{where} must be a list of column names")
        return [self.column_ref(name, types, where) for name in names]

    def parse_roles(self, doc: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
        for key in ("id_col", "treatment_col", "outcome_col", "covariate_cols"):
            if key not in doc:
                raise self.fail(f"missing required key {key!r}")
        roles: dict[str, Any] = {
            key: self.column_ref(doc[key], types, key)
            for key in ("id_col", "treatment_col", "outcome_col")
        }
        time_col = doc.get("time_col")
        roles["time_col"] = self.column_ref(time_col, types, "time_col") if time_col else None
        covariates = self.column_list(doc["covariate_cols"], types, "covariate_cols")
        if not covariates:
            raise self.fail("covariate_cols must name at least one covariate")
        if len(set(covariates)) != len(covariates):
            raise self.fail("covariate_cols lists a column twice")
        singles = [roles["id_col"], roles["time_col"], roles["treatment_col"], roles["outcome_col"]]
        for name in covariates:
            if name in singles:
                raise self.fail(f"covariate {name!r} is also the id, time, treatment or outcome")
        if len({name for name in singles if name}) != len([name for name in singles if name]):
            raise self.fail("id_col, time_col, treatment_col and outcome_col must be different")
        treatment_type = types[roles["treatment_col"]]
        if treatment_type not in INTEGER_TYPES | {"bool"}:
            raise self.fail(
                f"treatment_col {roles['treatment_col']!r} must be an integer (0/1) or bool, "
                f"not {treatment_type}"
            )
        if types[roles["outcome_col"]] not in NUMERIC_TYPES | {"bool"}:
            raise self.fail(f"outcome_col {roles['outcome_col']!r} must be numeric")
        if roles["time_col"] and types[roles["time_col"]] not in {"date", "datetime"}:
            raise self.fail(f"time_col {roles['time_col']!r} must be of type date or datetime")
        roles["covariate_cols"] = covariates
        return roles

    def parse_categories(self, spec: Any, types: dict[str, str]) -> dict[str, tuple[str, ...]]:
        result: dict[str, tuple[str, ...]] = {}
        for name, levels in (spec or {}).items():
            self.column_ref(name, types, "constraints.categories")
            if types[name] not in TEXT_TYPES:
                raise self.fail(f"categories for {name!r} need a category or string column")
            if not isinstance(levels, list) or not levels:
                raise self.fail(f"categories for {name!r} must be a non-empty list")
            result[name] = tuple(str(level) for level in levels)
        return result

    def parse_ranges(self, spec: Any, types: dict[str, str]) -> dict[str, tuple[float, float]]:
        result: dict[str, tuple[float, float]] = {}
        for name, bounds in (spec or {}).items():
            self.column_ref(name, types, "constraints.ranges")
            if types[name] not in NUMERIC_TYPES:
                raise self.fail(f"range for {name!r} needs a numeric column, not {types[name]}")
            numbers = [_number(b) for b in bounds] if isinstance(bounds, list) else []
            if len(numbers) != 2 or None in numbers:
                raise self.fail(f"range for {name!r} must be [low, high] numbers")
            low, high = float(numbers[0]), float(numbers[1])  # type: ignore[arg-type]
            if low > high:
                raise self.fail(f"range for {name!r} has low {low} above high {high}")
            result[name] = (low, high)
        return result

    def parse_sentinels(self, spec: Any, types: dict[str, str]) -> dict[str, tuple[Any, ...]]:
        result: dict[str, tuple[Any, ...]] = {}
        for name, values in (spec or {}).items():
            self.column_ref(name, types, "sentinels")
            if not isinstance(values, list) or not values:
                raise self.fail(f"sentinels for {name!r} must be a non-empty list")
            result[name] = tuple(values)
        return result

    def parse_normalisation(self, spec: Any, types: dict[str, str]) -> dict[str, Normalisation]:
        result: dict[str, Normalisation] = {}
        for name, options in (spec or {}).items():
            self.column_ref(name, types, "normalise")
            if types[name] not in TEXT_TYPES:
                raise self.fail(f"normalise for {name!r} needs a category or string column")
            options = self.check_keys(options, NORMALISE_KEYS, f"normalise.{name}")
            case = options.get("case", "none")
            if case not in ("upper", "lower", "none"):
                raise self.fail(f"normalise.{name}.case must be upper, lower or none")
            fallback = options.get("fallback")
            result[name] = Normalisation(
                case=case,
                trim=bool(options.get("trim", True)),
                fallback=None if fallback is None else str(fallback),
            )
        return result

    def parse_fills(self, spec: Any, types: dict[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in (spec or {}).items():
            self.column_ref(name, types, "fills")
            numeric = types[name] in NUMERIC_TYPES
            if numeric and not isinstance(value, int | float):
                raise self.fail(f"fill for numeric column {name!r} must be a number")
            result[name] = value
        return result

    def parse_descriptions(self, spec: Any, types: dict[str, str]) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, options in self.check_keys(spec, set(types), "columns").items():
            options = self.check_keys(options, COLUMN_KEYS, f"columns.{name}")
            result[name] = str(options.get("description", "")).strip()
        return result

    def parse_leakage(self, patterns: Any, types: dict[str, str]) -> tuple[str, ...]:
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise self.fail("leakage_forbidden_cols must be a list of name patterns")
        for name in types:
            for pattern in patterns:
                if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                    raise self.fail(
                        f"column {name!r} matches the leakage pattern {pattern!r}: "
                        "a forbidden column cannot be part of the dataset"
                    )
        return tuple(patterns)

    def parse_primary_key(
        self, spec: Any, roles: dict[str, Any], types: dict[str, str]
    ) -> tuple[str, ...]:
        if spec is None:
            default = [roles["id_col"], roles["time_col"]]
            return tuple(name for name in default if name)
        names = [spec] if isinstance(spec, str) else spec
        key = self.column_list(names, types, "primary_key")
        if not key or len(set(key)) != len(key):
            raise self.fail("primary_key must list one or more distinct columns")
        return tuple(key)

    def parse_estimand(self, value: Any) -> str:
        if value not in ESTIMANDS:
            raise self.fail(f"estimand must be one of {', '.join(ESTIMANDS)}, not {value!r}")
        return str(value)

    def parse_thresholds(self, spec: Any) -> Thresholds:
        spec = self.check_keys(spec, THRESHOLD_KEYS, "thresholds")
        defaults = Thresholds()
        bounds = spec.get("overlap_bounds", [defaults.overlap_lower, defaults.overlap_upper])
        valid = isinstance(bounds, list) and len(bounds) == 2
        if not valid or not all(isinstance(b, int | float) for b in bounds):
            raise self.fail("thresholds.overlap_bounds must be [low, high]")
        low, high = float(bounds[0]), float(bounds[1])
        if not 0.0 < low < high < 1.0:
            raise self.fail("thresholds.overlap_bounds must satisfy 0 < low < high < 1")
        share = spec.get("min_overlap_share", defaults.min_overlap_share)
        smd = spec.get("max_abs_smd", defaults.max_abs_smd)
        if not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise self.fail("thresholds.min_overlap_share must be a number in [0, 1]")
        if not isinstance(smd, int | float) or smd <= 0:
            raise self.fail("thresholds.max_abs_smd must be a positive number")
        return Thresholds(low, high, float(share), float(smd))

    def parse_csv(self, spec: Any, where: str, defaults: CsvOptions) -> CsvOptions:
        spec = self.check_keys(spec, CSV_KEYS, where)
        chars = {key: str(spec[key]) for key in ("delimiter", "quote", "escape") if key in spec}
        for key, value in chars.items():
            if len(value) != 1:
                raise self.fail(f"{where}.{key} must be a single character")
        skip = self.non_negative_int(spec.get("skip_rows", 0), f"{where}.skip_rows")
        return replace(defaults, skip_rows=skip, **chars)

    def parse_xlsx(self, spec: Any) -> XlsxOptions:
        spec = self.check_keys(spec, XLSX_KEYS, "xlsx")
        sheet = spec.get("sheet", 0)
        if not isinstance(sheet, str | int) or isinstance(sheet, bool):
            raise self.fail("xlsx.sheet must be a sheet name or a 0-based sheet index")
        skip = self.non_negative_int(spec.get("skip_rows", 0), "xlsx.skip_rows")
        return XlsxOptions(sheet=sheet, skip_rows=skip)

    def parse_jsonl(self, spec: Any, types: dict[str, str]) -> dict[str, str]:
        spec = self.check_keys(spec, JSONL_KEYS, "jsonl")
        paths = self.check_keys(spec.get("paths"), set(types), "jsonl.paths")
        for name, path in paths.items():
            if not isinstance(path, str) or not JSON_PATH.match(path):
                raise self.fail(
                    f"jsonl.paths.{name} must be a JSON path like '$.customer.id', not {path!r}"
                )
        return {str(name): str(path) for name, path in paths.items()}

    def parse_encoding(self, value: Any) -> str:
        try:
            return codecs.lookup(str(value)).name
        except LookupError:
            raise self.fail(
                f"unknown encoding {value!r}; use a Python codec name such as utf-8, "
                "utf-8-sig, shift_jis, cp932, latin-1"
            ) from None

    def parse_limits(self, spec: Any) -> Limits:
        spec = self.check_keys(spec, LIMIT_KEYS, "limits")
        defaults = Limits()
        values = {key: self.non_negative_int(spec[key], f"limits.{key}") for key in spec}
        return replace(defaults, **values)

    def parse_on_new_columns(self, value: Any) -> str:
        if value not in NEW_COLUMN_POLICIES:
            raise self.fail(
                f"on_new_columns must be one of {', '.join(NEW_COLUMN_POLICIES)}, not {value!r}"
            )
        return str(value)

    def parse_retention(self, spec: Any) -> Retention:
        spec = self.check_keys(spec, RETENTION_KEYS, "retention")
        return Retention(
            **{key: self.non_negative_int(spec[key], f"retention.{key}") for key in spec}
        )

    def non_negative_int(self, value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"{where} must be a whole number >= 0")
        return value

    def optional_share(self, value: Any, where: str) -> float | None:
        if value is None:
            return None
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise self.fail(f"{where} must be a number in [0, 1]")
        return float(value)


def _number(value: Any) -> float | None:
    """A YAML number, including forms YAML 1.1 reads as text (`1.0e6`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def contract_for(dataset: str, contracts_dir: Path) -> Contract:
    """The contract of `dataset`, with a hint listing the known datasets when it is missing."""
    path = contracts_dir / f"{dataset}.yml"
    if not path.is_file():
        known = sorted(p.stem for p in contracts_dir.glob("*.yml"))
        listing = ", ".join(known) if known else "none"
        raise ContractError(f"{path}: no contract for dataset {dataset!r} (known: {listing})")
    return load_contract(path)
