-- purpose: the view ecologists query for detections
-- inputs: predictions, windows, recordings, deployments, settings
-- detections: one row per classify answer whose score passes the catalog's detection threshold
-- (settings key 'detection_threshold'; `dawnchorus query --threshold` or the detections_at macro
-- choose another at query time), with absolute and local times and the deployment's site.
create or replace view detections as
with threshold as (
    select cast(value as double) as min_score
    from settings
    where key = 'detection_threshold'
),

final as (
    select
        p.deployment_id,
        d.site_id,
        d.latitude,
        d.longitude,
        p.recording_id,
        r.uri,
        p.channel,
        p.window_index,
        p.offset_s,
        p.offset_s + w.window_s as end_offset_s,
        p.start_utc,
        p.start_local,
        r.tz_name,
        p.label,
        p.scientific_name,
        p.score,
        p.rank,
        p.model_id,
        p.config_fingerprint,
        p.run_id
    from predictions as p
    inner join threshold as t on p.score >= t.min_score
    inner join windows as w
        on w.recording_id = p.recording_id
        and w.config_fingerprint = p.config_fingerprint
        and w.channel = p.channel
        and w.window_index = p.window_index
    inner join recordings as r on r.recording_id = p.recording_id
    left join deployments as d on d.deployment_id = p.deployment_id
    where p.task = 'classify'
)

select * from final;
