-- purpose: agreement of two fingerprints (e.g. BirdNET and NatureLM) on the windows both analysed
-- grain: one row per species detected by either fingerprint on a shared window
-- inputs: predictions, windows (raw model answers: no species filter, each model its own threshold)
-- A shared window is one analysed (status ok) under both fingerprints with the same recording,
-- channel, offset and length. jaccard = both / (both + a_only + b_only).
-- param: fingerprint_a varchar -- the first fingerprint (required)
-- param: fingerprint_b varchar -- the second fingerprint (required)
-- param: threshold_a double = 0.5 -- score at or above which fingerprint_a detects a species
-- param: threshold_b double = 0.5 -- score at or above which fingerprint_b detects a species
-- Plan: each side's answers above its threshold are few (a few % of its predictions), so they are
-- filtered first and only they are placed on their windows; the shared-window count is one
-- count over the two window sets. The full predictions table is never joined to every shared
-- window (what made this miss 1 s at 10.8 M predictions).
with windows_a as (
    select recording_id, channel, offset_s, window_s, window_index
    from windows
    where config_fingerprint = getvariable('fingerprint_a') and status = 'ok'
),

windows_b as (
    select recording_id, channel, offset_s, window_s, window_index
    from windows
    where config_fingerprint = getvariable('fingerprint_b') and status = 'ok'
),

shared_windows as (
    select count(*) as n
    from windows_a
    inner join windows_b using (recording_id, channel, offset_s, window_s)
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

-- each side's hits on its own analysed windows, keyed by where the window lies
said_a as (
    select w.recording_id, w.channel, w.offset_s, w.window_s, h.species
    from hits_a as h
    inner join windows_a as w using (recording_id, channel, window_index)
),

said_b as (
    select w.recording_id, w.channel, w.offset_s, w.window_s, h.species
    from hits_b as h
    inner join windows_b as w using (recording_id, channel, window_index)
),

-- only windows both analysed count: a hit whose window the other side did not analyse drops out
said_a_shared as (
    select * from said_a
    where exists (select 1 from windows_b as w
                  where w.recording_id = said_a.recording_id and w.channel = said_a.channel
                      and w.offset_s = said_a.offset_s and w.window_s = said_a.window_s)
),

said_b_shared as (
    select * from said_b
    where exists (select 1 from windows_a as w
                  where w.recording_id = said_b.recording_id and w.channel = said_b.channel
                      and w.offset_s = said_b.offset_s and w.window_s = said_b.window_s)
),

both_sides as (
    select
        coalesce(a.species, b.species) as species,
        a.species is not null as by_a,
        b.species is not null as by_b
    from said_a_shared as a
    full outer join said_b_shared as b using (recording_id, channel, offset_s, window_s, species)
),

final as (
    select
        species,
        count(*) filter (where by_a and by_b) as windows_both,
        count(*) filter (where by_a and not by_b) as windows_a_only,
        count(*) filter (where by_b and not by_a) as windows_b_only,
        (select n from shared_windows) as shared_windows,
        count(*) filter (where by_a and by_b) / count(*) as jaccard
    from both_sides
    group by species
)

select * from final order by windows_both + windows_a_only + windows_b_only desc, species
