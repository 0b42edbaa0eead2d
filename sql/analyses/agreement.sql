-- purpose: agreement of two fingerprints (e.g. BirdNET and NatureLM) on the windows both analysed
-- grain: one row per species detected by either fingerprint on a shared window
-- inputs: predictions, windows (raw model answers: no species filter, each model its own threshold)
-- A shared window is one analysed (status ok) under both fingerprints with the same recording,
-- channel, offset and length. jaccard = both / (both + a_only + b_only).
-- param: fingerprint_a varchar -- the first fingerprint (required)
-- param: fingerprint_b varchar -- the second fingerprint (required)
-- param: threshold_a double = 0.5 -- score at or above which fingerprint_a detects a species
-- param: threshold_b double = 0.5 -- score at or above which fingerprint_b detects a species
-- Plan: one scan of the two fingerprints' analysed windows, grouped by where a window lies, gives
-- both the shared windows and each side's window index there; each side's answers above its
-- threshold are few (a few % of its predictions), so they are filtered first and only they are
-- placed on the shared windows. No join of the full predictions table with every shared window.
with placed as (
    select
        recording_id, channel, offset_s, window_s,
        any_value(window_index) filter (where config_fingerprint = getvariable('fingerprint_a')) as index_a,
        any_value(window_index) filter (where config_fingerprint = getvariable('fingerprint_b')) as index_b
    from windows
    where config_fingerprint in (getvariable('fingerprint_a'), getvariable('fingerprint_b')) and status = 'ok'
    group by recording_id, channel, offset_s, window_s
),

shared as (
    select * from placed where index_a is not null and index_b is not null
),

hits_a as (
    select distinct recording_id, channel, window_index, coalesce(scientific_name, label) as species
    from predictions
    where config_fingerprint = getvariable('fingerprint_a') and task = 'classify'
        and score >= getvariable('threshold_a')
),

hits_b as (
    select distinct recording_id, channel, window_index, coalesce(scientific_name, label) as species
    from predictions
    where config_fingerprint = getvariable('fingerprint_b') and task = 'classify'
        and score >= getvariable('threshold_b')
),

said_a as (
    select s.recording_id, s.channel, s.offset_s, s.window_s, h.species
    from hits_a as h
    inner join shared as s
        on s.recording_id = h.recording_id and s.channel = h.channel and s.index_a = h.window_index
),

said_b as (
    select s.recording_id, s.channel, s.offset_s, s.window_s, h.species
    from hits_b as h
    inner join shared as s
        on s.recording_id = h.recording_id and s.channel = h.channel and s.index_b = h.window_index
),

both_sides as (
    select
        coalesce(a.species, b.species) as species,
        a.species is not null as by_a,
        b.species is not null as by_b
    from said_a as a
    full outer join said_b as b using (recording_id, channel, offset_s, window_s, species)
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
