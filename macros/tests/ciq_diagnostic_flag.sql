{% test ciq_diagnostic_flag(model, column_name) %}
    {#- One row per term whose flag is false (or null). Used with severity warn: a diagnostics
        flag (variance ratio, KS) is reported, it does not fail the build like a gate. -#}
    select *
    from {{ model }}
    where not coalesce({{ column_name }}, false)
{% endtest %}
