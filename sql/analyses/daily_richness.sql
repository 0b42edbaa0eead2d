-- purpose: daily species richness per site: how many species were detected each local day
-- grain: one row per site and local date with effort
-- inputs: the detections view (threshold, species filters), the site_day_effort view
-- A day with effort and no detection has richness 0; a day without effort has no row.
-- Species = scientific name, or the label where a model answer names no known species.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with effort as (
    select site_id, local_date, effort_hours
    from site_day_effort
    where config_fingerprint = getvariable('config_fingerprint')
),

heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        cast(start_local as date) as local_date,
        count(distinct coalesce(scientific_name, label)) as species
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
        and start_local is not null
    group by all
),

final as (
    select e.site_id, e.local_date, coalesce(h.species, 0) as species, e.effort_hours
    from effort as e
    left join heard as h using (site_id, local_date)
)

select * from final order by site_id, local_date
