-- purpose: change catalog settings and record who changed them and when, in one transaction
-- inputs: _setting (key, value rows), _change (rows shaped like `setting_changes`)
delete from settings where key in (select key from _setting);
insert into settings by name select * from _setting;
insert into setting_changes by name select * from _change;
