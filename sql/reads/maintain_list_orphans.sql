-- purpose: data files the catalog does not know: a commit killed after writing its Parquet file and
-- before committing it (listed only; `Catalog.maintain` deletes those older than its grace time)
-- grain: one row per file (path)
from ducklake_delete_orphaned_files('lake', cleanup_all => true, dry_run => true)
