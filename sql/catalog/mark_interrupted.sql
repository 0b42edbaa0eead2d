-- purpose: runs still marked running when a new run holds the results folder's run lock died
-- without finishing; mark them interrupted, with when that was noticed
-- parameters: $1 = noticed at (timestamptz), $2 = the run that noticed (left alone)
update runs
set status = 'interrupted', interrupted_at = $1
where status = 'running' and run_id <> $2
