-- purpose: what the review page shows of each classifier: its newest version's examples and
--   cross-validated metrics, how many versions it has, and the verdicts on its label since
-- grain: one row per classifier name
-- parameters: none
-- inputs: classifiers, reviews (the newest verdict per detection counts)
with newest as (
    select *, count(*) over (partition by name) as versions
    from classifiers
    qualify row_number() over (partition by name order by version desc) = 1
),

latest as (
    select *
    from reviews
    qualify row_number() over (
        partition by recording_id, config_fingerprint, channel, window_index, label
        order by reviewed_at desc, review_id desc
    ) = 1
),

final as (
    select
        n.name,
        n.classifier_id,
        n.version,
        n.label,
        n.config_fingerprint,
        n.embedding_fingerprint,
        n.embedding_model_id,
        n.n_positive,
        n.n_negative,
        n.n_weak_negative,
        n.cv_folds,
        n.cv_precision,
        n.cv_recall,
        n.cv_roc_auc,
        n.created_at,
        n.created_by,
        cast(n.versions as integer) as versions,
        -- verdicts that count as examples of the label (correct, wrong, other naming it) given
        -- after the newest version was trained: what a retrain would add
        cast(count(v.review_id) filter (
            where v.reviewed_at > n.created_at
                and ((lower(v.label) = lower(n.label) and v.verdict in ('correct', 'wrong', 'other'))
                     or (v.verdict = 'other' and lower(v.corrected_label) = lower(n.label)))
        ) as integer) as new_verdicts
    from newest as n
    left join latest as v on true
    group by all
)

select * from final
order by name
