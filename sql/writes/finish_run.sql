-- purpose: replace a run's row with its final state; inputs: _run (one row shaped like `runs`)
delete from runs where run_id in (select run_id from _run);
insert into runs by name select * from _run;
