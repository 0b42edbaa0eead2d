-- purpose: the embedded windows of some recordings that a classifier has still to score, with
-- their effort rows (copied under the classifier's fingerprint, with the audio's quality measures:
-- the classifier scores the same audio) and vectors
-- grain: one row per window and channel
-- parameters: $1 embedding fingerprint, $2 classifier fingerprint, $3 recording ids (a list)
-- inputs: embeddings, windows
with chosen as (
    select unnest($3) as recording_id
),

done as (
    select recording_id, channel, window_index
    from windows
    where config_fingerprint = $2 and recording_id in (select recording_id from chosen)
),

final as (
    select
        w.recording_id,
        w.deployment_id,
        w.channel,
        w.window_index,
        w.offset_s,
        w.window_s,
        w.duration_s,
        w.start_utc,
        w.start_local,
        w.date,
        w.padded,
        w.rms_dbfs,
        w.peak_dbfs,
        w.clipped_fraction,
        w.zero_run_s,
        w.qc,
        e.vector
    from embeddings as e
    inner join windows as w
        on w.config_fingerprint = e.config_fingerprint
        and w.recording_id = e.recording_id
        and w.channel = e.channel
        and w.window_index = e.window_index
    anti join done as d
        on d.recording_id = e.recording_id
        and d.channel = e.channel
        and d.window_index = e.window_index
    where e.config_fingerprint = $1 and e.recording_id in (select recording_id from chosen)
)

select * from final
order by recording_id, channel, window_index
