-- purpose: this connection's detection threshold (see shadow_settings); parameters: $1 key, $2 value
insert into temp.settings values ($1, $2)
