-- purpose: set catalog settings; inputs: _setting (key, value rows)
delete from settings where key in (select key from _setting);
insert into settings by name select * from _setting;
