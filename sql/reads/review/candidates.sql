-- purpose: the review queue: detections nobody has reviewed yet, in a stratified order per species
-- grain: one row per detection (window key + label) not yet reviewed
-- parameters: $min_score (lowest score offered), $score_bins score bins, $deployment_id, $label,
--   $config_fingerprint (each NULL = any), $max_rows most rows returned, $per_species most rows per fingerprint
--   and species (NULL = no limit), $labels a target list: only these labels, in this order (NULL = every species)
-- inputs: predictions, reviews, windows, recordings, deployments, species_occurrence, settings
-- species the species filters hide at a deployment are not offered there (as in detections);
-- species come in order of their number of detections to review, most first (or in the order of
-- the target list, when there is one).
-- order: per fingerprint and species, one detection from each score bin in turn (equal-width bins
-- over [min_score, 1]), the pick inside a bin fixed by a hash of the detection: the first n items
-- of a species are a stratified sample across its scores, and the order is the same on every
-- start of the page.
with -- The species filters, as the detections view applies them (docs/outputs.md): the queue offers
-- no species a deployment's lists or the location-and-season filter hide there.
unlikely_here_and_now as (
    select o.deployment_id, o.week, o.scientific_name
    from species_occurrence as o
    inner join settings as s
        on s.key = 'location_filter_threshold' and o.occurrence < cast(s.value as double)
),

classify as (
    select *
    from predictions
    where task = 'classify'
        and label is not null
        and score >= $min_score
        and ($deployment_id is null or deployment_id = $deployment_id)
        and ($label is null or label = $label)
        and ($labels is null or list_contains($labels, label))
        and ($config_fingerprint is null or config_fingerprint = $config_fingerprint)
        and not exists (
            select 1 from unlikely_here_and_now as u
            where u.deployment_id = predictions.deployment_id
                and u.scientific_name = predictions.scientific_name
                and u.week = (month(predictions.start_local) - 1) * 4
                    + least(4, (day(predictions.start_local) - 1) // 7 + 1))
        and not exists (
            select 1 from deployments as d
            where d.deployment_id = predictions.deployment_id
                and (coalesce(list_contains(d.species_exclude, lower(predictions.scientific_name))
                              or list_contains(d.species_exclude, lower(predictions.label)), false)
                     or (d.species_include is not null
                         and not coalesce(list_contains(d.species_include, lower(predictions.scientific_name))
                                          or list_contains(d.species_include, lower(predictions.label)), false))))
    -- a label a model gave twice for one window (free-text answers can) is one detection
    qualify row_number() over (
        partition by recording_id, config_fingerprint, channel, window_index, label
        order by score desc, rank
    ) = 1
),

binned as (
    select
        *,
        least(cast(floor((score - $min_score) / (1.0 - $min_score) * $score_bins) as integer), $score_bins - 1) as score_bin,
        md5(concat_ws('|', recording_id, config_fingerprint, channel, window_index, label)) as draw,
        count(*) over (partition by label) as species_detections
    from classify
),

turns as (
    select
        *,
        row_number() over (partition by config_fingerprint, label, score_bin order by draw) as turn
    from binned
),

-- positions are given over every detection, reviewed or not, so reviewing some never moves the
-- others: a queue left half done resumes exactly where it was
placed as (
    select
        *,
        row_number() over (
            partition by config_fingerprint, label order by turn, score_bin desc
        ) as queue_position
    from turns
),

pending as (
    select p.*
    from placed as p
    anti join reviews as v
        on v.recording_id = p.recording_id
        and v.config_fingerprint = p.config_fingerprint
        and v.channel = p.channel
        and v.window_index = p.window_index
        and v.label = p.label
    qualify $per_species is null or row_number() over (
        partition by p.config_fingerprint, p.label order by p.queue_position
    ) <= $per_species
),

final as (
    select
        t.recording_id,
        t.config_fingerprint,
        t.channel,
        t.window_index,
        t.deployment_id,
        d.site_id,
        t.label,
        t.scientific_name,
        t.score,
        t.rank,
        t.offset_s,
        w.window_s,
        t.start_utc,
        t.start_local,
        r.tz_name,
        r.object_key,
        r.uri,
        r.duration_s,
        r.sample_rate_hz,
        t.model_id,
        t.score_bin,
        t.queue_position,
        t.species_detections
    from pending as t
    inner join windows as w
        on w.recording_id = t.recording_id
        and w.config_fingerprint = t.config_fingerprint
        and w.channel = t.channel
        and w.window_index = t.window_index
    inner join recordings as r on r.recording_id = t.recording_id
    left join deployments as d on d.deployment_id = t.deployment_id
)

select * exclude (species_detections) from final
order by coalesce(list_position($labels, label), 0), species_detections desc, label,
    config_fingerprint, queue_position
limit $max_rows
