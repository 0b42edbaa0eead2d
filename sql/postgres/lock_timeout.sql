-- purpose: bound how long this session waits for a lease; parameters: the timeout (text, e.g. '300s')
select set_config('lock_timeout', %s, false)
