-- purpose: the fingerprints that have embeddings, with their model and the settings of the
-- latest run that wrote them (what `dawnchorus similar` rebuilds the model from); the width of
-- their vectors is read apart (vector_width.sql: one vector, not all of them)
-- grain: one row per config_fingerprint in embeddings
-- inputs: embeddings, runs
with embedded as (
    select
        config_fingerprint,
        any_value(model_id) as model_id,
        count(distinct model_id) as model_ids,
        count(*) as vectors
    from embeddings
    group by config_fingerprint
),

latest_run as (
    select config_fingerprint, arg_max(parameters, started_at) as parameters
    from runs
    where config_fingerprint in (select config_fingerprint from embedded)
    group by config_fingerprint
),

final as (
    select e.*, r.parameters
    from embedded as e
    left join latest_run as r using (config_fingerprint)
)

select * from final order by config_fingerprint
