-- purpose: agreement of two fingerprints (e.g. BirdNET and NatureLM) on the windows both analysed
-- grain: one row per species detected by either fingerprint on a shared window
-- inputs: predictions, windows (raw model answers: no species filter, each model its own threshold)
-- A shared window is one analysed (status ok) under both fingerprints with the same recording,
-- channel, offset and length. jaccard = both / (both + a_only + b_only).
-- param: fingerprint_a varchar -- the first fingerprint (required)
-- param: fingerprint_b varchar -- the second fingerprint (required)
-- param: threshold_a double = 0.5 -- score at or above which fingerprint_a detects a species
-- param: threshold_b double = 0.5 -- score at or above which fingerprint_b detects a species
with windows_a as (
    select recording_id, channel, offset_s, window_s, window_index as index_a
    from windows
    where config_fingerprint = getvariable('fingerprint_a') and status = 'ok'
),

windows_b as (
    select recording_id, channel, offset_s, window_s, window_index as index_b
    from windows
    where config_fingerprint = getvariable('fingerprint_b') and status = 'ok'
),

shared as (
    select *
    from windows_a
    inner join windows_b using (recording_id, channel, offset_s, window_s)
),

said_a as (
    select distinct s.recording_id, s.channel, s.offset_s, coalesce(p.scientific_name, p.label) as species
    from shared as s
    inner join predictions as p
        on p.recording_id = s.recording_id and p.channel = s.channel
        and p.window_index = s.index_a
    where p.config_fingerprint = getvariable('fingerprint_a') and p.task = 'classify'
        and p.score >= getvariable('threshold_a')
),

said_b as (
    select distinct s.recording_id, s.channel, s.offset_s, coalesce(p.scientific_name, p.label) as species
    from shared as s
    inner join predictions as p
        on p.recording_id = s.recording_id and p.channel = s.channel
        and p.window_index = s.index_b
    where p.config_fingerprint = getvariable('fingerprint_b') and p.task = 'classify'
        and p.score >= getvariable('threshold_b')
),

both_sides as (
    select
        coalesce(a.species, b.species) as species,
        a.species is not null as by_a,
        b.species is not null as by_b
    from said_a as a
    full outer join said_b as b using (recording_id, channel, offset_s, species)
),

final as (
    select
        species,
        count(*) filter (where by_a and by_b) as windows_both,
        count(*) filter (where by_a and not by_b) as windows_a_only,
        count(*) filter (where by_b and not by_a) as windows_b_only,
        (select count(*) from shared) as shared_windows,
        count(*) filter (where by_a and by_b) / count(*) as jaccard
    from both_sides
    group by species
)

select * from final order by windows_both + windows_a_only + windows_b_only desc, species
