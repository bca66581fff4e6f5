{%- set contract = ciq_settings() -%}

with

source as (

    select * from {{ source('loader', 'records') }}

),

renamed as (

    select
        {%- for column in contract.columns %}
        cast({{ adapter.quote(column.name) }} as {{ ciq_type(column.type) }}) as {{ adapter.quote(column.name) }},
        {%- endfor %}
        _source_file,
        _source_row

    from source

)

select * from renamed
