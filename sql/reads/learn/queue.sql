-- purpose: the active-learning queue of one classifier: the windows its newest version scored that
--   nobody has judged yet, the most uncertain and the top-scoring in turn
-- grain: one row per window of the newest version's fingerprint not yet judged
-- parameters: $name (the classifier's name), $labelled (list of 'recording_id|channel|window_index':
--   windows that are examples already, e.g. a Raven table's), $max_rows most rows returned
-- inputs: classifiers, predictions, reviews, windows, recordings, deployments
-- judged: any verdict (unsure included) on the label in that window under any version of the
--   classifier (all versions share the embedding fingerprint's windows) or under the embedding
--   fingerprint itself (a window marked in the page's marking list), or an example already.
-- order: turn = least(2 * uncertain_rank - 1, 2 * top_rank), where uncertain_rank orders by
--   |score - 0.5| (smallest first) and top_rank by score (highest first), ties broken by a hash of
--   the window: the most uncertain, the top-scoring, the second most uncertain, the second
--   highest, ...; a window that is both takes its earlier turn and appears once.
with newest as (
    select name, label, config_fingerprint
    from classifiers
    where name = $name
    qualify row_number() over (order by version desc) = 1
),

versions as (
    select config_fingerprint
    from classifiers
    where name = $name
    union
    select embedding_fingerprint as config_fingerprint
    from classifiers
    where name = $name
),

judged as (
    select r.recording_id, r.channel, r.window_index
    from reviews as r
    inner join versions as v on v.config_fingerprint = r.config_fingerprint
    inner join newest as n on lower(r.label) = lower(n.label)
),

labelled as (
    select unnest(coalesce($labelled, []::varchar[])) as key
),

scored as (
    select p.*
    from predictions as p
    inner join newest as n
        on p.config_fingerprint = n.config_fingerprint
        and p.label = n.label
    where p.task = 'classify'
),

pending as (
    select s.*
    from scored as s
    anti join judged as j
        on j.recording_id = s.recording_id
        and j.channel = s.channel
        and j.window_index = s.window_index
    anti join labelled as l
        on l.key = concat_ws('|', s.recording_id, s.channel, s.window_index)
),

ranked as (
    select
        *,
        row_number() over (order by abs(score - 0.5), md5(concat_ws('|', recording_id, channel, window_index))) as uncertain_rank,
        row_number() over (order by score desc, md5(concat_ws('|', recording_id, channel, window_index))) as top_rank
    from pending
),

final as (
    select
        t.recording_id,
        t.config_fingerprint,
        t.channel,
        t.window_index,
        t.deployment_id,
        d.site_id,
        t.label,
        t.scientific_name,
        t.score,
        t.rank,
        t.offset_s,
        w.window_s,
        t.start_utc,
        t.start_local,
        r.tz_name,
        r.object_key,
        r.uri,
        r.duration_s,
        r.sample_rate_hz,
        t.model_id,
        case when 2 * t.uncertain_rank - 1 < 2 * t.top_rank then 'uncertain' else 'top' end as pick,
        least(2 * t.uncertain_rank - 1, 2 * t.top_rank) as turn
    from ranked as t
    inner join windows as w
        on w.recording_id = t.recording_id
        and w.config_fingerprint = t.config_fingerprint
        and w.channel = t.channel
        and w.window_index = t.window_index
    inner join recordings as r on r.recording_id = t.recording_id
    left join deployments as d on d.deployment_id = t.deployment_id
)

select * from final
order by turn
limit $max_rows
