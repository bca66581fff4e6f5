{% test ciq_publish_parity(model, log) %}
    {#- A published table has the rows its publish log row says, and (replace mode) exactly as many
        as the DuckDB table had; in upsert mode at least as many. Fails when the table is not logged. -#}
    with

    published as (

        select count(*) as n_rows from {{ model }}

    ),

    logged as (

        select * from {{ log }} where table_name = '{{ model.identifier }}'

    )

    select
        '{{ model.identifier }}' as table_name,
        published.n_rows,
        logged.postgres_rows,
        logged.duckdb_rows,
        logged.mode

    from published
    left join logged on true
    where logged.table_name is null
        or published.n_rows <> logged.postgres_rows
        or (logged.mode = 'replace' and logged.postgres_rows <> logged.duckdb_rows)
        or (logged.mode = 'upsert' and logged.postgres_rows < logged.duckdb_rows)
{% endtest %}
