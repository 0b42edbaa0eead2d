-- purpose: the report's best detections: the highest-scoring windows of each of the top species,
--   with what the report needs to cut their audio (uri, offset, window length, channel)
-- grain: one row per species and window, at most per_species rows per species, top_species species
-- inputs: the detections view (threshold, species filters)
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: top_species integer = 20 -- species, most detected first (as report_species)
-- param: per_species integer = 3 -- best detections per species
with heard as (
    select coalesce(site_id, deployment_id) as site_id, *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
),

species as (
    select
        label,
        scientific_name,
        row_number() over (
            order by count(distinct (recording_id, channel, window_index)) desc, max(score) desc, label
        ) as species_rank
    from heard
    group by label, scientific_name
),

best as (
    select
        s.species_rank,
        h.label,
        h.scientific_name,
        h.site_id,
        h.deployment_id,
        h.recording_id,
        h.uri,
        h.channel,
        h.window_index,
        h.offset_s,
        h.end_offset_s,
        h.start_local,
        h.tz_name,
        round(h.score, 3) as score,
        row_number() over (
            partition by h.label, h.scientific_name
            order by h.score desc, h.start_utc, h.recording_id, h.window_index
        ) as detection_rank
    from heard as h
    inner join species as s
        on s.label = h.label and s.scientific_name is not distinct from h.scientific_name
    where s.species_rank <= getvariable('top_species')
),

final as (
    select * from best where detection_rank <= getvariable('per_species')
)

select * from final order by species_rank, detection_rank
