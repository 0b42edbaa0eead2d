-- purpose: every window in the light it was recorded in (docs/time.md, "Solar time")
-- inputs: windows, solar_samples, solar_days
-- window_light: one row per window (recording, fingerprint, channel, window index) with a start
-- time: the sun's elevation at the window's middle (degrees, with refraction; interpolated
-- between astral's 15-minute samples), the light class there (day: sun above -0.833 degrees;
-- civil_twilight above -6; nautical_twilight above -12; astronomical_twilight above -18; night;
-- polar_day and polar_night on days when the sun does not set or does not rise), and the minutes
-- from that local day's sunrise and sunset (negative before; NULL on polar days). A deployment
-- without coordinates has NULL in all four.
create or replace view window_light as
with placed as (
    select
        recording_id,
        config_fingerprint,
        channel,
        window_index,
        deployment_id,
        start_utc + to_microseconds(cast(window_s * 500000 as bigint)) as mid_utc,
        epoch(start_utc) + window_s / 2 as mid_s,
        cast(start_local + to_microseconds(cast(window_s * 500000 as bigint)) as date) as local_date
    from windows
    where start_utc is not null
),

lit as (
    select
        p.*,
        a.elevation_deg + (b.elevation_deg - a.elevation_deg) * (p.mid_s - a.slot * 900) / 900.0
            as sun_elevation_deg,
        s.polar,
        s.sunrise_utc,
        s.sunset_utc
    from placed as p
    left join solar_samples as a
        on a.deployment_id = p.deployment_id
        and a.slot = cast(floor(p.mid_s) as bigint) // 900
    left join solar_samples as b
        on b.deployment_id = p.deployment_id
        and b.slot = cast(floor(p.mid_s) as bigint) // 900 + 1
    left join solar_days as s
        on s.deployment_id = p.deployment_id
        and s.local_date = p.local_date
)

select
    recording_id,
    config_fingerprint,
    channel,
    window_index,
    mid_utc,
    local_date,
    sun_elevation_deg,
    case
        when polar = 'day' then 'polar_day'
        when polar = 'night' then 'polar_night'
        when sun_elevation_deg is null then null
        when sun_elevation_deg >= -0.833 then 'day'
        when sun_elevation_deg >= -6 then 'civil_twilight'
        when sun_elevation_deg >= -12 then 'nautical_twilight'
        when sun_elevation_deg >= -18 then 'astronomical_twilight'
        else 'night'
    end as light_class,
    (epoch(mid_utc) - epoch(sunrise_utc)) / 60.0 as minutes_from_sunrise,
    (epoch(mid_utc) - epoch(sunset_utc)) / 60.0 as minutes_from_sunset
from lit
