-- purpose: the windows the privacy gate marked as human speech (docs/privacy.md)
-- grain: one row per marked window, channel and fingerprint
-- inputs: speech_marks
-- parameters: $config_fingerprint (NULL: every fingerprint), $recording_ids (list or NULL),
--   $deployments (list or NULL)
with final as (
    select recording_id, deployment_id, config_fingerprint, channel, window_index, offset_s,
        window_s, speech_s, model_speech_score
    from speech_marks
    where speech
        and ($config_fingerprint is null or config_fingerprint = $config_fingerprint)
        and ($recording_ids is null or list_contains($recording_ids, recording_id))
        and ($deployments is null or list_contains($deployments, deployment_id))
)

select * from final order by recording_id, offset_s, channel, config_fingerprint
