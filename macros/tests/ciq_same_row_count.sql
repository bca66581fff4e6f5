{% test ciq_same_row_count(model, compare) %}
    {#- The model has as many rows as `compare` (a ref or source). -#}
    with

    counts as (

        select
            (select count(*) from {{ model }}) as n_rows,
            (select count(*) from {{ compare }}) as n_compare

    )

    select * from counts where n_rows <> n_compare
{% endtest %}
