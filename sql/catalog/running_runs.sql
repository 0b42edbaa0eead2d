-- purpose: runs still marked running, but one; parameters: $1 = the run to leave out
select run_id from runs where status = 'running' and run_id <> $1 order by started_at
