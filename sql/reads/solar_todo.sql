-- purpose: what the sun tables still lack: each deployment with coordinates, per local day of its
-- windows (kind 'day', with the day's zone) and per 15-minute slot its windows' middles fall in
-- or next to (kind 'slot'), where nothing was computed for the deployment's coordinates now
-- grain: one row per deployment and day, or deployment and slot
with placed as (
    select
        w.deployment_id,
        coalesce(r.tz_name, 'UTC') as tz_name,
        cast(w.start_local + to_microseconds(cast(w.window_s * 500000 as bigint)) as date) as local_date,
        cast(floor(epoch(w.start_utc) + w.window_s / 2) as bigint) // 900 as slot,
        d.latitude,
        d.longitude
    from windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    inner join deployments as d on d.deployment_id = w.deployment_id
    where w.start_utc is not null
        and w.start_local is not null
        and d.latitude is not null
        and d.longitude is not null
),

days as (
    select
        deployment_id,
        local_date,
        any_value(tz_name) as tz_name,
        any_value(latitude) as latitude,
        any_value(longitude) as longitude
    from placed
    group by deployment_id, local_date
),

slots as (
    select distinct deployment_id, slot + k as slot, latitude, longitude
    from placed, (values (0), (1)) as next (k)
)

select 'day' as kind, y.deployment_id, y.local_date, y.tz_name, null as slot, y.latitude, y.longitude
from days as y
anti join solar_days as s
    on s.deployment_id = y.deployment_id
    and s.local_date = y.local_date
    and s.latitude = y.latitude
    and s.longitude = y.longitude
union all
select 'slot', t.deployment_id, null, null, t.slot, t.latitude, t.longitude
from slots as t
anti join solar_samples as s
    on s.deployment_id = t.deployment_id
    and s.slot = t.slot
    and s.latitude = t.latitude
    and s.longitude = t.longitude
order by kind, deployment_id, local_date, slot
