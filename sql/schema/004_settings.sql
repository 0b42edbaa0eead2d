-- purpose: default query-time settings of a new catalog
insert into settings values ('detection_threshold', '0.5');
