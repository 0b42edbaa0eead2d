-- purpose: record a run as it starts (status running); inputs: _run (one row shaped like `runs`)
insert into runs by name select * from _run;
