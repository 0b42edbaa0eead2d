-- purpose: replace the calibrated thresholds of the (fingerprint, species) pairs calibrate fitted,
-- in the caller's transaction; other pairs keep theirs
-- inputs: _thresholds (rows shaped like `thresholds`)
delete from thresholds
where exists (
    select 1
    from _thresholds as t
    where t.config_fingerprint = thresholds.config_fingerprint
        and t.label = thresholds.label
);
insert into thresholds by name select * from _thresholds;
