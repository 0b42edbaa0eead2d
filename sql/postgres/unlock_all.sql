-- purpose: give back every lease this session holds
select pg_advisory_unlock_all()
