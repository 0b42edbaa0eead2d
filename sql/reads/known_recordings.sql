-- purpose: what the catalog already holds, to tell new and changed recordings from known ones
-- grain: one row per recording version held
select * from recordings
