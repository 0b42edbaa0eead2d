-- purpose: what was heard, in one row: detections, species and sites, the detection threshold,
--   the answers below it, and the species above it that the species filters hide (the run
--   summary's line and the report's empty states)
-- grain: one row per call (the fingerprint's totals, or one run's)
-- inputs: predictions, windows, settings, the detections view (threshold, species filters)
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: analysed_by_run varchar = null -- only the windows this run analysed (default: every run)
with threshold as (
    select cast(value as double) as min_score
    from settings
    where key = 'detection_threshold'
),

answers as (
    select p.label, p.scientific_name, p.score
    from predictions as p
    where p.task = 'classify'
        and p.config_fingerprint = getvariable('config_fingerprint')
        and (getvariable('analysed_by_run') is null or p.run_id = getvariable('analysed_by_run'))
),

shown as (
    select
        count(*) as detections,  -- one per window and species, as species_by_night sums them
        count(distinct (label, scientific_name)) as species,
        count(distinct coalesce(site_id, deployment_id)) as sites
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
        and (getvariable('analysed_by_run') is null or run_id = getvariable('analysed_by_run'))
),

analysed as (
    select count(*) filter (where status = 'ok') as windows_analysed
    from windows
    where config_fingerprint = getvariable('config_fingerprint')
        and (getvariable('analysed_by_run') is null or run_id = getvariable('analysed_by_run'))
),

final as (
    select
        t.min_score as threshold,
        a.windows_analysed,
        (select count(*) from answers where score >= t.min_score) as above_threshold,
        (select count(*) from answers where score < t.min_score) as below_threshold,
        s.detections,
        s.species,
        s.sites,
        greatest(0, (select count(distinct (label, scientific_name)) from answers
                     where score >= t.min_score) - s.species) as species_hidden
    from threshold as t
    cross join shown as s
    cross join analysed as a
)

select * from final
