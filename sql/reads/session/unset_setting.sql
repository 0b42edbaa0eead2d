-- purpose: drop setting $key from this connection's settings (see shadow_settings), for keys only
-- a reader sets (detection_threshold_source); parameters: $key = the key
delete from temp.settings where key = $key
