{% macro generate_schema_name(custom_schema_name, node) -%}
    {#- Each dataset's tables live in a schema named after the dataset (events.causal_ready, ...);
        a folder may name its own with +schema (publish/: the var ciq_publish_schema, if set). -#}
    {%- if custom_schema_name -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ ciq_settings().dataset }}
    {%- endif -%}
{%- endmacro %}
