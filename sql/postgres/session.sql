-- purpose: a lease session's server-side TCP keepalives, so that the server ends the session (and
-- drops its advisory locks) when the client's machine vanishes without closing the connection
-- parameters (in order): idle seconds, interval seconds, probe count, each as text
select
    set_config('tcp_keepalives_idle', %s, false),
    set_config('tcp_keepalives_interval', %s, false),
    set_config('tcp_keepalives_count', %s, false)
