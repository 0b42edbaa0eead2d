-- purpose: what each config fingerprint is, in words, and when it ran
-- inputs: runs, windows
-- fingerprints: one row per config fingerprint that has runs or windows: the model, window, hop,
-- tasks and model options its runs were given (from runs.parameters), a readable description,
-- its runs (first and last start), its windows analysed, and whether it is the newest (the one
-- with the latest run). Name one by a unique prefix wherever a fingerprint is asked for.
create or replace view fingerprints as
with run_facts as (
    select
        config_fingerprint,
        model_id,
        json_extract_string(parameters, '$.model') as model,
        cast(json_extract_string(parameters, '$.window_s') as double) as window_s,
        cast(coalesce(json_extract_string(parameters, '$.hop_s'),
                      json_extract_string(parameters, '$.window_s')) as double) as hop_s,
        json_extract_string(parameters, '$.tail') as tail,
        json_extract_string(parameters, '$.channel_policy') as channel_policy,
        json_extract(parameters, '$.tasks') as tasks,
        json_extract(parameters, '$.model_options') as model_options,
        started_at
    from runs
    where config_fingerprint is not null
),

per_fingerprint as (
    select
        config_fingerprint,
        arg_max(model_id, started_at) as model_id,
        arg_max(model, started_at) as model,
        arg_max(window_s, started_at) as window_s,
        arg_max(hop_s, started_at) as hop_s,
        arg_max(tail, started_at) as tail,
        arg_max(channel_policy, started_at) as channel_policy,
        cast(arg_max(tasks, started_at) as varchar) as tasks,
        cast(arg_max(model_options, started_at) as varchar) as model_options,
        count(*) as runs,
        min(started_at) as first_run_at,
        max(started_at) as last_run_at
    from run_facts
    group by config_fingerprint
),

analysed as (
    select config_fingerprint, count(*) as windows, sum(duration_s) / 3600.0 as audio_hours
    from windows
    group by config_fingerprint
),

final as (
    select
        coalesce(p.config_fingerprint, a.config_fingerprint) as config_fingerprint,
        p.model_id,
        p.model || ', ' || cast(p.window_s as varchar) || ' s windows every '
            || cast(p.hop_s as varchar) || ' s, tasks ' || p.tasks
            || case when p.model_options is null or p.model_options = '{}' then ''
                    else ', options ' || p.model_options end as description,
        p.window_s,
        p.hop_s,
        p.tail,
        p.channel_policy,
        p.tasks,
        p.model_options,
        coalesce(p.runs, 0) as runs,
        p.first_run_at,
        p.last_run_at,
        coalesce(a.windows, 0) as windows,
        coalesce(a.audio_hours, 0) as audio_hours,
        p.last_run_at is not null
            and p.last_run_at = max(p.last_run_at) over () as newest
    from per_fingerprint as p
    full outer join analysed as a on a.config_fingerprint = p.config_fingerprint
)

select * from final;
