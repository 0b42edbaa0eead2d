-- purpose: every run, oldest first
select * from runs order by started_at
