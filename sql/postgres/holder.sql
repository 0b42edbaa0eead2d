-- purpose: the session holding one lease: its application name (dawnchorus:<run_id>:<pid>@<host>),
-- when it connected, and its client address. A bigint advisory-lock key shows in pg_locks as its
-- high half in classid, its low half in objid, and objsubid = 1.
-- parameters: the key's high 32 bits, its low 32 bits (both as unsigned integers)
select
    a.application_name,
    a.backend_start,
    a.client_addr::text as client_addr
from pg_locks as l
inner join pg_stat_activity as a on a.pid = l.pid
where l.locktype = 'advisory'
    and l.granted
    and l.objsubid = 1
    and l.classid::bigint = %s
    and l.objid::bigint = %s
limit 1
