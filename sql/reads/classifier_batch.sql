-- purpose: the embedded windows of some recordings that a classifier has still to score, with
-- their effort rows (copied under the classifier's fingerprint, with the audio's quality measures
-- and the band its model analysed: the classifier scores the same audio) and vectors (`vector`
-- float32 or `vector_f16` float16: connectors.catalog.vectors decodes both)
-- grain: one row per window and channel, in no particular order (sorting a batch's vectors would
-- cost more than reading them)
-- parameters: $1 embedding fingerprint, $2 classifier fingerprint, $3 recording ids (a list),
-- $4 their deployments (a list), $5 and $6 the first and last UTC date of their windows, $7 whether
-- any of their windows has no date. $4-$7 only narrow the partitions read (embeddings and windows
-- are partitioned by deployment and date): without them each batch would read every vector.
-- inputs: embeddings, windows
with chosen as (
    select unnest($3) as recording_id
),

embedded as (
    select *
    from embeddings
    where config_fingerprint = $1
        and list_contains($4, deployment_id)
        and (date between $5 and $6 or ($7 and date is null))
        and recording_id in (select recording_id from chosen)
),

in_batch as (
    -- the window rows of both fingerprints in the batch's partitions: one read of `windows`
    select *
    from windows
    where config_fingerprint in ($1, $2)
        and list_contains($4, deployment_id)
        and (date between $5 and $6 or ($7 and date is null))
),

effort as (
    select * from in_batch where config_fingerprint = $1
),

done as (
    select recording_id, channel, window_index
    from in_batch
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
        w.band_low_hz,
        w.band_high_hz,
        e.vector,
        e.vector_f16
    from embedded as e
    inner join effort as w
        on w.config_fingerprint = e.config_fingerprint
        and w.recording_id = e.recording_id
        and w.channel = e.channel
        and w.window_index = e.window_index
    anti join done as d
        on d.recording_id = e.recording_id
        and d.channel = e.channel
        and d.window_index = e.window_index
)

select * from final
