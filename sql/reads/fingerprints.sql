-- purpose: the config fingerprints the catalog holds results of, oldest first
-- grain: one row per fingerprint
select config_fingerprint
from windows
group by config_fingerprint
order by min(start_utc) nulls last, config_fingerprint
