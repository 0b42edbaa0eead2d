-- purpose: take one lease (a session-level advisory lock) if no other session holds it
-- parameters: the lease key (bigint); returns true when taken
select pg_try_advisory_lock(%s)
