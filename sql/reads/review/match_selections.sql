-- purpose: find the detection each row of an imported Raven selection table names
-- grain: one row per table row and matching detection (none: not in the catalog; several:
--   several fingerprints analysed that window)
-- parameters: lists of equal length, one item per table row: $selections its Selection number, $begin_paths Begin
--   Path (the recording's uri), $raven_channels Raven channel (1 = the mean of all channels, or channel 1),
--   $file_offsets_s File Offset (s), $labels Common Name (the label), $fingerprints fingerprint (NULL = any)
-- inputs: recordings, predictions
with selections as (
    select
        unnest($selections) as selection,
        unnest($begin_paths) as begin_path,
        unnest($raven_channels) as raven_channel,
        unnest($file_offsets_s) as file_offset_s,
        unnest($labels) as label,
        unnest($fingerprints) as fingerprint
),

final as (
    select
        s.selection,
        p.recording_id,
        p.config_fingerprint,
        p.channel,
        p.window_index,
        p.deployment_id,
        p.label,
        max(p.score) as score
    from selections as s
    inner join recordings as r on r.uri = s.begin_path
    inner join predictions as p
        on p.recording_id = r.recording_id
        and p.task = 'classify'
        and p.label = s.label
        -- Raven tables carry offsets in decimal text; windows start far more than 5 ms apart
        and abs(p.offset_s - s.file_offset_s) < 0.005
        and (p.channel = s.raven_channel or (s.raven_channel = 1 and p.channel = 0))
        and (s.fingerprint is null or p.config_fingerprint = s.fingerprint)
    group by all
)

select * from final
order by selection, config_fingerprint
