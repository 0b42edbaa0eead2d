-- purpose: analysed audio per deployment and day
-- inputs: windows
-- effort: one row per deployment, UTC date and fingerprint: how much audio was analysed, failed or
-- empty, and in which frequency band. Lets an analysis tell "not analysed" from "nothing heard",
-- and "nothing heard" from "nothing could have been heard" (docs/bat-analyses.md): band_low_hz /
-- band_high_hz are the band every analysed window of the day covered (the highest low edge and
-- the lowest top); windows_band_unknown counts analysed windows from before schema version 11.
create or replace view effort as
with final as (
    select
        deployment_id,
        date,
        config_fingerprint,
        count(*) as windows,
        count(*) filter (where status = 'ok') as windows_ok,
        count(*) filter (where status = 'empty') as windows_empty,
        count(*) filter (where status = 'failed') as windows_failed,
        sum(duration_s) filter (where status = 'ok') as seconds_analysed,
        max(band_low_hz) filter (where status = 'ok') as band_low_hz,
        min(band_high_hz) filter (where status = 'ok') as band_high_hz,
        count(*) filter (where status = 'ok' and band_high_hz is null) as windows_band_unknown
    from windows
    group by deployment_id, date, config_fingerprint
)

select * from final;
