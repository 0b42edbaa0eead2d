-- purpose: the stored vectors of chosen windows of one fingerprint (a classifier's training set)
-- grain: one row per window and channel asked for (its vector in `vector` or `vector_f16`)
-- parameters: $config_fingerprint; $keys: list of 'recording_id|channel|window_index'
-- inputs: embeddings
with wanted as (
    select unnest($keys) as key
),

final as (
    select k.key, e.vector, e.vector_f16
    from embeddings as e
    inner join wanted as k
        on k.key = e.recording_id || '|' || e.channel || '|' || e.window_index
    where e.config_fingerprint = $config_fingerprint
)

select * from final
