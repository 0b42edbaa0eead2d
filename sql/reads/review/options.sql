-- purpose: what the review page offers: deployments, species and fingerprints to filter on, the
-- label list for "other species", and each fingerprint's model
-- grain: one row per kind and value
-- inputs: predictions, reviews
with classify as (
    select deployment_id, label, config_fingerprint, model_id
    from predictions
    where task = 'classify' and label is not null
),

final as (
    select distinct 'deployment' as kind, deployment_id as value, null as detail from classify
    union all
    select distinct 'label', label, null from classify
    union all
    select distinct 'fingerprint', config_fingerprint, model_id from classify
    union all
    select distinct 'corrected_label', corrected_label, null
    from reviews
    where corrected_label is not null
)

select * from final
order by kind, value
