-- purpose: a temporary copy of the catalog's settings, which shadows them for this connection
-- only (a reader's own detection threshold; see reset_threshold and set_threshold)
create temp table settings as select * from lake.settings
