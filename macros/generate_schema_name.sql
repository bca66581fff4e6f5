{% macro generate_schema_name(custom_schema_name, node) -%}
    {#- Each dataset's tables live in a schema named after the dataset (events.causal_ready, ...). -#}
    {{ ciq_settings().dataset }}
{%- endmacro %}
