-- purpose: version 3 — species filters per deployment: include/exclude lists (deployments.csv
-- columns species_include, species_exclude) and BirdNET's location-and-season meta-model answers
-- per deployment, BirdNET week and species; its threshold is a setting (BirdNET's 0.03).
alter table deployments add column species_include varchar[];
alter table deployments add column species_exclude varchar[];

create table if not exists species_occurrence (
    deployment_id varchar not null,
    week smallint not null,          -- BirdNET week 1-48 of the windows' local date
    scientific_name varchar not null,
    label varchar not null,
    occurrence double not null,      -- the meta-model's probability
    latitude double not null,        -- the coordinates it was asked about
    longitude double not null,
    model_id varchar not null,
    run_id varchar not null
);

alter table species_occurrence set partitioned by (deployment_id);

insert into settings values ('location_filter_threshold', '0.03');
