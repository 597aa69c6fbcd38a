create table if not exists field_inspector.site_note (
  site varchar(80) primary key,
  note text not null default ''
);
