-- purpose: the report's species cards: what was heard, the most detected species first
-- grain: one row per species (label and scientific name), at most top_species rows
-- inputs: the detections view (threshold, species filters)
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: top_species integer = 20 -- how many species the report shows (the rest: this analysis with a larger value)
with heard as (
    select coalesce(site_id, deployment_id) as site_id, *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
),

per_species as (
    select
        label,
        scientific_name,
        count(distinct (recording_id, channel, window_index)) as detections,
        count(distinct site_id) as sites,
        string_agg(distinct site_id, ', ' order by site_id) as site_ids,
        min(start_local) as first_local,
        max(start_local) as last_local,
        round(max(score), 3) as max_score
    from heard
    group by label, scientific_name
),

ranked as (
    select
        *,
        row_number() over (order by detections desc, max_score desc, label) as species_rank,
        count(*) over () as species_total
    from per_species
),

final as (
    select * from ranked where species_rank <= getvariable('top_species')
)

select * from final order by species_rank
