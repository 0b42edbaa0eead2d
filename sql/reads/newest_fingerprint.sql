-- purpose: the fingerprint with the newest run (commands read it when none is named or pinned)
-- grain: at most one row
select config_fingerprint
from runs
where config_fingerprint is not null
    and config_fingerprint in (select distinct config_fingerprint from windows)
order by started_at desc, config_fingerprint
limit 1
