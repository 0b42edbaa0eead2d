-- purpose: give back one lease this session holds; parameters: the lease key (bigint)
select pg_advisory_unlock(%s)
