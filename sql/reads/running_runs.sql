-- purpose: runs still marked running, but one; parameters: $except_run_id = the run to leave out
select run_id from runs where status = 'running' and run_id <> $except_run_id order by started_at
