-- purpose: recordings for a Camtrap DP package (media)
-- grain: one row per readable recording with a known start time
-- inputs: recordings
-- parameters: $deployments (list or NULL)
with final as (
    select recording_id, deployment_id, uri, object_key, format, start_utc, duration_s
    from recordings
    where status = 'ok' and start_utc is not null
        and ($deployments is null or list_contains($deployments, deployment_id))
)

select * from final order by deployment_id, start_utc, object_key
