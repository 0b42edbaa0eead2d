-- purpose: delete every file scheduled for deletion (merged away, or only in expired snapshots)
-- grain: one row per deleted file
-- `Catalog.maintain` runs this before it merges or expires anything when readers are to be kept
-- working, so it deletes only what an earlier maintenance scheduled (a reader scanning those
-- would have started before that one). DuckLake's own older_than filter is not used: in
-- extension d8a1881e it compares at coarser than sub-day precision.
from ducklake_cleanup_old_files('lake', cleanup_all => true)
