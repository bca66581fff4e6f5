{% macro ciq_settings() %}
    {#- The active dataset's contract, as `ciq generate <dataset>` wrote it (macros/generated/). -#}
    {%- if context.get('ciq_generated_contract') is none -%}
        {{ exceptions.raise_compiler_error(
            "No active dataset: run `ciq generate <dataset>` (make all does) so dbt knows the contract."
        ) }}
    {%- endif -%}
    {{ return(context['ciq_generated_contract']()) }}
{% endmacro %}
