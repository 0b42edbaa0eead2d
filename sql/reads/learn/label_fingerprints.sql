-- purpose: the fingerprints with classify answers of one label (which results `density` reads)
-- grain: one row per fingerprint
-- parameters: $label (compared lower-case)
-- inputs: predictions
select distinct config_fingerprint
from predictions
where task = 'classify' and lower(label) = lower($label)
order by config_fingerprint
