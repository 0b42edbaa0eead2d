-- purpose: the settings of a fingerprint's latest run (what a plain `dawnchorus run` continues)
-- grain: at most one row
-- parameters: $config_fingerprint
select parameters
from runs
where config_fingerprint = $config_fingerprint
order by started_at desc
limit 1
