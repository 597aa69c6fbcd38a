-- A helper the reports use; the body holds semicolons inside $$ quotes.
create or replace function hr_core.full_name(first text, last text) returns text
language plpgsql immutable as $$
begin
  -- not a statement end; just a comment
  return trim(first || ' ' || last);
end;
$$;

comment on function hr_core.full_name(text, text) is 'First and last name; trimmed';
