-- purpose: expire the snapshots older than the retention; files only they reference are
-- scheduled for deletion (not deleted: a reader may still be scanning them)
-- grain: one row per expired snapshot; parameters: $older_than = expire snapshots older than (timestamptz)
from ducklake_expire_snapshots('lake', older_than => $older_than::timestamptz)
