-- purpose: every run, newest first (reports pick theirs)
-- grain: one row per run
select * from runs order by started_at desc, run_id desc
