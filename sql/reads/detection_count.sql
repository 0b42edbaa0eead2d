-- purpose: how many detections the reader sees (its thresholds and species filters applied)
-- grain: one row
select count(*) as n from detections
