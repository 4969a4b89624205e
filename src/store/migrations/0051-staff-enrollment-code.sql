-- An invitation approved by a second person is enrolled with two secrets: the link, given to the approver, and an
-- enrollment code, given to the person who asked for the invitation when they asked. The code's SHA-256 (the code
-- carries about 99 random bits) is kept here; null for an invitation that needs the link alone (the first owner, or
-- an invitation made while nobody else could approve it).
ALTER TABLE staff_enrollments ADD COLUMN code_hash bytea;
