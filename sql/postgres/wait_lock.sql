-- purpose: take one lease, waiting for it (bounded by the session's lock_timeout)
-- parameters: the lease key (bigint)
select pg_advisory_lock(%s)
