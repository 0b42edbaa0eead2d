-- purpose: every window with the privacy gate's mark (docs/privacy.md)
-- grain: one row per window, channel and fingerprint (as `windows`)
-- inputs: windows, speech_marks
-- speech_check: 'speech' (marked; its audio is withheld while the gate is on), 'no speech', or
-- 'not checked' (analysed before the gate existed, or a window that failed or was empty); speech is
-- NULL unless checked.
create or replace view window_speech as
with final as (
    select
        w.run_id,
        w.config_fingerprint,
        w.recording_id,
        w.deployment_id,
        w.channel,
        w.window_index,
        w.offset_s,
        w.window_s,
        w.start_utc,
        w.status,
        m.speech,
        m.speech_s,
        m.model_speech_score,
        m.detector,
        case
            when m.speech is null then 'not checked'
            when m.speech then 'speech'
            else 'no speech'
        end as speech_check
    from windows as w
    left join speech_marks as m
        on m.config_fingerprint = w.config_fingerprint
        and m.recording_id = w.recording_id
        and m.channel = w.channel
        and m.window_index = w.window_index
)

select * from final;
