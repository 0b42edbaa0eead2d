-- purpose: a temporary copy of the catalog's settings without one key, which then shadows the
-- catalog's settings for this connection only (a reader's own detection threshold)
-- parameters: $1 = the key left out
create temp table settings as select * from lake.settings where key <> $1
