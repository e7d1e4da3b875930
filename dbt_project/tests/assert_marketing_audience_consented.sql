-- Marketing never reaches a customer without granted consent: every marketing_audience row must
-- belong to a golden customer whose consent_marketing is 'granted' (withdrawn and unknown never).
{{ config(tags=['governance']) }}

select a.golden_id, d.consent_marketing
from {{ ref('marketing_audience') }} as a
left join {{ ref('dim_customer') }} as d on d.golden_id = a.golden_id
where d.consent_marketing is null or d.consent_marketing <> 'granted'
