-- purpose: drop setting $1 from this connection's settings (see shadow_settings), for keys only
-- a reader sets (detection_threshold_source); parameters: $1 = the key
delete from temp.settings where key = $1
