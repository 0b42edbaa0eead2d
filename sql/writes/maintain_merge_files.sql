-- purpose: merge the small Parquet files of each table and partition into few large ones; the
-- replaced files stay for older snapshots (time travel) until those expire
-- grain: one row per table merged
from ducklake_merge_adjacent_files('lake')
