-- purpose: the sun's events and elevations for some deployments, days and slots, replacing rows
-- computed for the same ones before (coordinates that changed), in the caller's transaction
-- inputs: _solar_days (solar_days rows), _solar_samples (solar_samples rows)
delete from solar_days
where exists (
    select 1 from _solar_days as n
    where n.deployment_id = solar_days.deployment_id and n.local_date = solar_days.local_date
);
delete from solar_samples
where exists (
    select 1 from _solar_samples as n
    where n.deployment_id = solar_samples.deployment_id and n.slot = solar_samples.slot
);
insert into solar_days by name select * from _solar_days;
insert into solar_samples by name select * from _solar_samples;
