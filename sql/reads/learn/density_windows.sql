-- purpose: every analysed window of one fingerprint with its score for one label (0 when the
-- model gave the label no score there) and the verdict that counts on it, for call density
-- (`dawnchorus density`, after Navine et al. 2024)
-- grain: one row per window and channel with status ok under the fingerprint
-- parameters: $config_fingerprint, $label (compared lower-case)
-- inputs: windows, predictions, reviews
with scores as (
    select recording_id, channel, window_index, max(score) as score
    from predictions
    where config_fingerprint = $config_fingerprint
        and task = 'classify'
        and lower(label) = lower($label)
    group by all
),

verdicts as (
    select
        recording_id,
        channel,
        window_index,
        arg_max(
            case
                when verdict = 'correct' then 1
                when verdict = 'other' and lower(corrected_label) = lower($label) then 1
                when verdict in ('wrong', 'other') then 0
            end,
            reviewed_at
        ) as present
    from reviews
    where config_fingerprint = $config_fingerprint
        and lower(label) = lower($label)
        and verdict <> 'unsure'
    group by all
),

final as (
    select
        w.deployment_id,
        cast(w.start_local - interval 12 hour as date) as night_date,
        w.recording_id,
        w.channel,
        w.window_index,
        w.offset_s,
        coalesce(s.score, 0.0) as score,
        v.present
    from windows as w
    left join scores as s using (recording_id, channel, window_index)
    left join verdicts as v using (recording_id, channel, window_index)
    where w.config_fingerprint = $config_fingerprint
        and w.status = 'ok'
)

select * from final
order by recording_id, channel, window_index
