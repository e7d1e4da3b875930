-- The cross-reference BI tools and downstream systems read: every source record and the golden
-- customer it belongs to, how sure the model is and how the link was made.
-- A view: mdm.xref is rewritten by every link step, a copy would cost a full write each run.

{{ config(materialized='view') }}

with

xref as (

    select * from {{ source('mdm', 'xref') }}

),

final as (

    select
        record_id,
        source,
        source_id,
        golden_id,
        match_probability,
        assignment,
        assigned_at_utc
    from xref

)

select * from final
