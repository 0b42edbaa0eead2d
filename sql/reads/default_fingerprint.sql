-- purpose: the fingerprint the analyses read when none is named, as every dawnchorus command
-- chooses it: the pinned one (settings key default_fingerprint), else the one with the newest
-- run, else (no runs recorded) the one whose windows start last; NULL for an empty catalog
select coalesce(
    (
        select value
        from settings
        where key = 'default_fingerprint'
            and value in (select config_fingerprint from windows)
    ),
    (
        select config_fingerprint
        from runs
        where config_fingerprint in (select config_fingerprint from windows)
        order by started_at desc, config_fingerprint
        limit 1
    ),
    (
        select config_fingerprint
        from windows
        group by config_fingerprint
        order by min(start_utc) desc nulls first, config_fingerprint desc
        limit 1
    )
)
