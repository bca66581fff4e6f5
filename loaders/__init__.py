"""ciq loaders: contract checks, typed staging and the glue between contracts and dbt."""

__version__ = "0.1.0"
