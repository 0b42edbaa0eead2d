-- purpose: the readable recordings among those listed now, for planning
-- grain: one row per recording version; inputs: _ids (recording_id)
select r.*
from recordings as r
where r.status = 'ok' and r.recording_id in (select recording_id from _ids)
order by r.uri
