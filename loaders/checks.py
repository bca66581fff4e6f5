"""The contract's row rules as DuckDB SQL expressions over a row's raw text and typed values."""

from __future__ import annotations

from dataclasses import dataclass

from loaders.contract import INTEGER_TYPES, TEXT_TYPES, Column, Contract
from loaders.sql import literal, literal_list

RULES = (
    "not_null",
    "type",
    "range",
    "category",
    "treatment_binary",
    "nul_byte",
    "max_field_length",
    "json",
    "nested",
)


@dataclass(frozen=True)
class RuleCheck:
    """One rule on one column: `failed` is true for a row that breaks it."""

    column: str
    rule: str
    failed: str
    detail: str


def typed(raw: str, column: Column) -> str:
    """The typed value of a raw text expression (NULL when it does not parse)."""
    return f"try_cast({raw} as {column.duckdb_type})"


def normalised(raw: str, column: Column) -> str:
    """A text value after the contract's normalisation (trim, case), before its fallback."""
    rule = column.normalisation
    if rule is None:
        return raw
    value = f"trim({raw})" if rule.trim else raw
    if rule.case == "upper":
        value = f"upper({value})"
    elif rule.case == "lower":
        value = f"lower({value})"
    return value


def column_checks(
    column: Column, raw: str, value: str, treatment_col: str, max_field_length: int
) -> list[RuleCheck]:
    """The rule checks of one column; `raw` is its text, `value` its typed expression."""
    checks: list[RuleCheck] = []
    if column.not_null:
        checks.append(RuleCheck(column.name, "not_null", f"{raw} is null", "value is required"))
    unparsed = f"{value} is null"
    if column.type in INTEGER_TYPES:  # DuckDB rounds '34.5' to 35: a fraction is a type error
        unparsed += f" or (contains({raw}, '.') and try_cast({raw} as double) <> {value})"
    checks.append(
        RuleCheck(
            column.name,
            "type",
            f"({raw} is not null and ({unparsed}))",
            f"not a valid {column.type}",
        )
    )
    if column.type in TEXT_TYPES:
        checks.append(
            RuleCheck(column.name, "nul_byte", f"contains({raw}, chr(0))", "holds a NUL byte")
        )
        checks.append(
            RuleCheck(
                column.name,
                "max_field_length",
                f"strlen({raw}) > {max_field_length}",
                f"longer than limits.max_field_length ({max_field_length} bytes)",
            )
        )
    not_sentinel = (
        f" and {value} not in {literal_list(column.sentinels)}" if column.sentinels else ""
    )
    if column.value_range is not None:
        low, high = column.value_range
        checks.append(
            RuleCheck(
                column.name,
                "range",
                f"({value} is not null{not_sentinel} and ({value} < {literal(low)} "
                f"or {value} > {literal(high)}))",
                f"outside [{low:g}, {high:g}]",
            )
        )
    fallback = column.normalisation.fallback if column.normalisation else None
    if column.categories is not None and fallback is None:
        checks.append(
            RuleCheck(
                column.name,
                "category",
                f"({raw} is not null{not_sentinel} and "
                f"{normalised(raw, column)} not in {literal_list(column.categories)})",
                f"not one of {', '.join(column.categories)}",
            )
        )
    if column.name == treatment_col:
        checks.append(
            RuleCheck(
                column.name,
                "treatment_binary",
                f"({value} is not null and {value}::double not in (0, 1))",
                "treatment must be 0 or 1",
            )
        )
    return checks


def all_checks(
    contract: Contract, raw_of: dict[str, str], value_of: dict[str, str]
) -> list[RuleCheck]:
    """Every rule check of the contract, given each column's raw and typed expressions."""
    checks: list[RuleCheck] = []
    for column in contract.columns:
        checks.extend(
            column_checks(
                column,
                raw_of[column.name],
                value_of[column.name],
                contract.treatment_col,
                contract.limits.max_field_length,
            )
        )
    return checks


def _broken(check: RuleCheck) -> str:
    """The rule's condition, never NULL (a NULL would reject a row without a reason)."""
    return f"coalesce({check.failed}, false)"


def row_is_valid(checks: list[RuleCheck]) -> str:
    """True for a row that breaks no rule."""
    return "not (" + " or ".join(_broken(check) for check in checks) + ")"


def row_failures(checks: list[RuleCheck], raw_of: dict[str, str]) -> str:
    """The list of {column, rule, raw_value, detail} a row breaks (empty when valid)."""
    items = ", ".join(
        f"case when {_broken(check)} then {{'column_name': {literal(check.column)}, "
        f"'rule': {literal(check.rule)}, 'raw_value': {raw_of[check.column]}, "
        f"'detail': {literal(check.detail)}}} end"
        for check in checks
    )
    return f"list_filter([{items}], lambda failure: failure is not null)"
