-- Issue 21: `rap-analyzer import` matches a row without a Genius id to the tracks with
-- the same (artist, title), compared by this key: whitespace runs (space, tab, CR, LF,
-- FF, VT) collapsed to one space, trimmed, ASCII letters lower-cased. Only ASCII
-- letters: lower() depends on the server's locale (under the C locale it leaves "É"
-- alone), and the importer computes the same key in Python
-- (analyzer_runtime/corpus_import/values.name_key) to find duplicates within a file;
-- both must agree byte for byte. The index makes the lookup one probe per row rather
-- than a scan of tracks per chunk.
CREATE FUNCTION track_name_key(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(btrim(regexp_replace($1, '[ \t\n\r\f\v]+', ' ', 'g'), ' '),
                           'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') $$;

CREATE INDEX tracks_name_key_idx ON tracks (track_name_key(artist), track_name_key(title));
