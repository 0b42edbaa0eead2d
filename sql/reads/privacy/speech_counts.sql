-- purpose: the privacy gate per deployment: windows checked for human speech, marked, and not
--   checked (analysed before the gate existed, failed or empty), for the report
-- grain: one row per deployment and fingerprint
-- inputs: the window_speech view
-- parameters: $config_fingerprint (NULL: every fingerprint), $run_id (NULL: every run; else the
--   windows that run analysed)
with final as (
    select
        w.deployment_id,
        w.config_fingerprint,
        count(*) as windows,
        count(*) filter (where w.speech_check <> 'not checked') as windows_checked,
        count(*) filter (where w.speech_check = 'speech') as windows_marked,
        count(*) filter (where w.speech_check = 'not checked') as windows_not_checked
    from window_speech as w
    where ($config_fingerprint is null or w.config_fingerprint = $config_fingerprint)
        and ($run_id is null or w.run_id = $run_id)
    group by w.deployment_id, w.config_fingerprint
)

select * from final order by deployment_id, config_fingerprint
