{% macro ciq_type(contract_type) -%}
    {#- The SQL type of a contract type on the current adapter. -#}
    {{ return(adapter.dispatch('ciq_type', 'ciq')(contract_type)) }}
{%- endmacro %}

{% macro default__ciq_type(contract_type) -%}
    {%- set types = {
        'int8': 'smallint', 'int16': 'smallint', 'int32': 'integer', 'int64': 'bigint',
        'float32': 'real', 'float64': 'double precision', 'bool': 'boolean',
        'string': 'text', 'category': 'text', 'date': 'date', 'datetime': 'timestamp'
    } -%}
    {{ return(types[contract_type]) }}
{%- endmacro %}

{% macro duckdb__ciq_type(contract_type) -%}
    {%- set types = {
        'int8': 'tinyint', 'int16': 'smallint', 'int32': 'integer', 'int64': 'bigint',
        'float32': 'float', 'float64': 'double', 'bool': 'boolean',
        'string': 'varchar', 'category': 'varchar', 'date': 'date', 'datetime': 'timestamp'
    } -%}
    {{ return(types[contract_type]) }}
{%- endmacro %}
