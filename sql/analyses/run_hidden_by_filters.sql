-- purpose: strong predictions of a run that the species filters hide from detections: which filter, and why
-- grain: one row per deployment, species and filter
-- inputs: predictions, deployments, species_occurrence, settings
-- filter = location (BirdNET's occurrence at the deployment and BirdNET week is below the
-- catalog's location_filter_threshold, or the reader's: query --location-threshold),
-- species_exclude or species_include (deployments.csv lists). A species hidden in some windows
-- by one filter and shown in others is listed for the windows it was hidden in.
-- param: run_id varchar -- the run (required)
-- param: min_score double = 0.5 -- a prediction at least this strong is worth naming
with location_threshold as (
    select cast(value as double) as min_occurrence
    from settings
    where key = 'location_filter_threshold'
),

strong as (
    select
        p.*,
        (month(p.start_local) - 1) * 4 + least(4, (day(p.start_local) - 1) // 7 + 1) as week
    from predictions as p
    where p.task = 'classify'
        and p.score >= getvariable('min_score')
        and p.run_id = getvariable('run_id')
),

judged as (
    select
        s.*,
        o.occurrence,
        t.min_occurrence,
        case
            when coalesce(list_contains(d.species_exclude, lower(s.scientific_name))
                          or list_contains(d.species_exclude, lower(s.label)), false)
                then 'species_exclude'
            when d.species_include is not null
                and not coalesce(list_contains(d.species_include, lower(s.scientific_name))
                                 or list_contains(d.species_include, lower(s.label)), false)
                then 'species_include'
            when o.occurrence < t.min_occurrence then 'location'
        end as filter
    from strong as s
    left join deployments as d on d.deployment_id = s.deployment_id
    left join location_threshold as t on true
    left join species_occurrence as o
        on o.deployment_id = s.deployment_id
        and o.scientific_name = s.scientific_name
        and o.week = s.week
),

final as (
    select
        deployment_id,
        label,
        scientific_name,
        filter,
        round(max(score), 3) as best_score,
        count(distinct (recording_id, channel, window_index)) as windows,
        case filter
            when 'location' then
                'BirdNET occurrence ' || cast(round(max(occurrence), 3) as varchar)
                || ' at this site in week ' || string_agg(distinct cast(week as varchar), ', ')
                || ' is below the location filter''s ' || cast(any_value(min_occurrence) as varchar)
            when 'species_exclude' then 'in the deployment''s species_exclude list'
            else 'not in the deployment''s species_include list'
        end as why
    from judged
    where filter is not null
    group by deployment_id, label, scientific_name, filter
)

select * from final order by best_score desc, deployment_id, label
