-- Departments every installation starts with; re-running is harmless (but it never re-runs).
insert into hr_core.department (code, name) values
  ('ENG', 'Engineering'),
  ('OPS', 'Operations; Facilities'),
  ('HR', 'Human Resources')
on conflict (code) do nothing;
