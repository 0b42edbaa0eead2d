-- purpose: the detections an export writes, with their recording and deployment
-- grain: one row per detection (recording, channel, window, answer rank)
-- inputs: the detections view (thresholds: a species' calibrated one or the catalog's, species
-- filters), recordings
-- parameters: $config_fingerprint; $deployments, $species (lists, or NULL for all);
-- $date_from, $date_to (local dates, or NULL); $light_classes (list of light classes, or NULL);
-- $qc ('exclude': not the detections of windows whose quality verdict is silent, dropout or
-- clipped, as occupancy histories leave those windows out of effort; 'include': every one)
with picked as (
    select *
    from detections
    where config_fingerprint = $config_fingerprint
        and ($deployments is null or list_contains($deployments, deployment_id))
        and ($species is null
            or list_contains($species, lower(scientific_name))
            or list_contains($species, lower(label)))
        and ($date_from is null or cast(start_local as date) >= $date_from)
        and ($date_to is null or cast(start_local as date) <= $date_to)
        and ($light_classes is null or list_contains($light_classes, light_class))
        and ($qc = 'include' or not exists (
            select 1
            from windows as w
            where w.config_fingerprint = detections.config_fingerprint
                and w.recording_id = detections.recording_id
                and w.channel = detections.channel
                and w.window_index = detections.window_index
                and w.qc <> 'ok'))
),

final as (
    select
        p.deployment_id,
        coalesce(p.site_id, p.deployment_id) as site_id,
        p.latitude,
        p.longitude,
        p.recording_id,
        p.uri,
        r.object_key,
        r.duration_s as recording_duration_s,
        r.sample_rate_hz,
        r.format,
        p.channel,
        p.window_index,
        p.offset_s,
        least(p.end_offset_s, r.duration_s) as end_offset_s,
        p.start_utc,
        p.start_local,
        p.tz_name,
        cast(p.start_local - interval 12 hour as date) as night_date,
        p.label,
        p.scientific_name,
        p.score,
        p.rank,
        p.call_start_s,
        p.call_end_s,
        p.low_freq_hz,
        p.high_freq_hz,
        p.detection_score,
        p.model_id,
        p.config_fingerprint,
        p.run_id,
        p.threshold,
        p.threshold_source
    from picked as p
    inner join recordings as r on r.recording_id = p.recording_id
)

select * from final order by object_key, offset_s, channel, rank
