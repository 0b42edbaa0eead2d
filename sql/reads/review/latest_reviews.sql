-- purpose: the verdict that counts for every reviewed detection (the newest), with what a Raven
-- table and a calibration need; a recording changed since keeps its verdicts (and their scores)
-- grain: one row per reviewed detection (window key + label)
-- parameters: $config_fingerprint (NULL = all)
-- inputs: reviews, recordings, windows, predictions
with latest as (
    select *
    from reviews
    where $config_fingerprint is null or config_fingerprint = $config_fingerprint
    qualify row_number() over (
        partition by recording_id, config_fingerprint, channel, window_index, label
        order by reviewed_at desc, review_id desc
    ) = 1
),

names as (
    select label, any_value(scientific_name) as scientific_name
    from predictions
    where task = 'classify' and scientific_name is not null
    group by label
),

final as (
    select
        v.review_id,
        v.reviewed_at,
        v.reviewer,
        v.recording_id,
        v.config_fingerprint,
        v.channel,
        v.window_index,
        v.deployment_id,
        v.label,
        n.scientific_name,
        v.score,
        v.verdict,
        v.corrected_label,
        v.via,
        r.uri,
        r.duration_s,
        r.sample_rate_hz,
        w.offset_s,
        w.window_s
    from latest as v
    left join recordings as r on r.recording_id = v.recording_id
    left join windows as w
        on w.recording_id = v.recording_id
        and w.config_fingerprint = v.config_fingerprint
        and w.channel = v.channel
        and w.window_index = v.window_index
    left join names as n on n.label = v.label
)

select * from final
order by config_fingerprint, label, uri, offset_s, channel
