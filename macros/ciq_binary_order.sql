{% macro ciq_binary_order(expression) -%}
    {#- `expression` sorted by its bytes, as DuckDB sorts text, whatever the database collation:
        PostgreSQL would otherwise sort file names by its locale and pick another duplicate. -#}
    {{ return(adapter.dispatch('ciq_binary_order', 'ciq')(expression)) }}
{%- endmacro %}

{% macro default__ciq_binary_order(expression) -%}
    {{ return(expression) }}
{%- endmacro %}

{% macro postgres__ciq_binary_order(expression) -%}
    {{ return(expression ~ ' collate "C"') }}
{%- endmacro %}
