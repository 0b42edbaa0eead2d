-- purpose: analysed audio per deployment and day
-- inputs: windows
-- effort: one row per deployment, UTC date and fingerprint: how much audio was analysed, failed or
-- empty. Lets an analysis tell "not analysed" from "nothing heard".
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
        sum(duration_s) filter (where status = 'ok') as seconds_analysed
    from windows
    group by deployment_id, date, config_fingerprint
)

select * from final;
