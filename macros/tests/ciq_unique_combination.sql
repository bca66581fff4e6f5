{% test ciq_unique_combination(model, columns) %}
    {#- No two rows share the same values of `columns` (a single or composite key). -#}
    select
        {% for name in columns %}{{ adapter.quote(name) }}, {% endfor %}
        count(*) as n_rows
    from {{ model }}
    group by {% for name in columns %}{{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor %}
    having count(*) > 1
{% endtest %}
