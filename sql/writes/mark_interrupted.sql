-- purpose: runs still marked running whose holder died without finishing (no run lock or lease
-- holds them any more); mark them interrupted, with when that was noticed
-- parameters: $noticed_at = noticed at (timestamptz); inputs: _dead (run_id: the runs found dead)
update runs
set status = 'interrupted', interrupted_at = $noticed_at
where status = 'running' and run_id in (select run_id from _dead)
