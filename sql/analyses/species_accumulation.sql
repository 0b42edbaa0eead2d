-- purpose: species accumulation curve: species detected so far against effort hours so far
-- grain: one row per site and local date with effort, in date order
-- inputs: the detections view (threshold, species filters), the site_day_effort view
-- new_species = species first detected at the site that day; cumulative_species never decreases.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with effort as (
    select site_id, local_date, effort_hours
    from site_day_effort
    where config_fingerprint = getvariable('config_fingerprint')
),

first_heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        coalesce(scientific_name, label) as species,
        min(cast(start_local as date)) as local_date
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
        and start_local is not null
    group by all
),

new_per_day as (
    select site_id, local_date, count(*) as new_species
    from first_heard
    group by all
),

final as (
    select
        e.site_id,
        e.local_date,
        e.effort_hours,
        sum(e.effort_hours) over (
            partition by e.site_id order by e.local_date
        ) as cumulative_effort_hours,
        coalesce(n.new_species, 0) as new_species,
        sum(coalesce(n.new_species, 0)) over (
            partition by e.site_id order by e.local_date
        ) as cumulative_species
    from effort as e
    left join new_per_day as n using (site_id, local_date)
)

select * from final order by site_id, local_date
