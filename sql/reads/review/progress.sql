-- purpose: review progress per fingerprint and species: verdicts so far and detections left
-- grain: one row per config_fingerprint and label that has detections to review or verdicts
-- parameters: $min_score (as the queue), $deployment_id, $label, $config_fingerprint, $labels (a target list; NULL = every species)
--   (each NULL = any)
-- inputs: reviews (the newest verdict per detection counts), predictions, deployments,
--   species_occurrence, settings (species the filters hide are not counted as left to review)
-- order: species with the most detections (reviewed and left) first
with latest as (
    select *
    from reviews
    where ($deployment_id is null or deployment_id = $deployment_id)
        and ($label is null or label = $label)
        and ($labels is null or list_contains($labels, label))
        and ($config_fingerprint is null or config_fingerprint = $config_fingerprint)
    qualify row_number() over (
        partition by recording_id, config_fingerprint, channel, window_index, label
        order by reviewed_at desc, review_id desc
    ) = 1
),

verdicts as (
    select
        config_fingerprint,
        label,
        count(*) as reviewed,
        count(*) filter (where verdict = 'correct') as correct,
        count(*) filter (where verdict = 'wrong') as wrong,
        count(*) filter (where verdict = 'unsure') as unsure,
        count(*) filter (where verdict = 'other') as other
    from latest
    group by config_fingerprint, label
),

-- The species filters, as the detections view applies them (docs/outputs.md): the queue offers
-- no species a deployment's lists or the location-and-season filter hide there.
unlikely_here_and_now as (
    select o.deployment_id, o.week, o.scientific_name
    from species_occurrence as o
    inner join settings as s
        on s.key = 'location_filter_threshold' and o.occurrence < cast(s.value as double)
),

detections as (
    select distinct recording_id, config_fingerprint, channel, window_index, label
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
),

pending as (
    select config_fingerprint, label, count(*) as pending
    from detections as d
    anti join latest as v
        on v.recording_id = d.recording_id
        and v.config_fingerprint = d.config_fingerprint
        and v.channel = d.channel
        and v.window_index = d.window_index
        and v.label = d.label
    group by config_fingerprint, label
),

final as (
    select
        coalesce(v.config_fingerprint, p.config_fingerprint) as config_fingerprint,
        coalesce(v.label, p.label) as label,
        coalesce(v.reviewed, 0) as reviewed,
        coalesce(v.correct, 0) as correct,
        coalesce(v.wrong, 0) as wrong,
        coalesce(v.unsure, 0) as unsure,
        coalesce(v.other, 0) as other,
        coalesce(p.pending, 0) as pending
    from verdicts as v
    full outer join pending as p
        on p.config_fingerprint = v.config_fingerprint
        and p.label = v.label
)

select * from final
order by sum(reviewed + pending) over (partition by label) desc, label, config_fingerprint
