{% test ciq_row_count(model, expected) %}
    {#- The model has exactly `expected` rows. -#}
    with

    counts as (

        select count(*) as n_rows from {{ model }}

    )

    select * from counts where n_rows <> {{ expected }}
{% endtest %}
