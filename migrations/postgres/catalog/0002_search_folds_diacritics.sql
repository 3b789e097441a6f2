-- Catalog on Postgres, version 2: search ignores Latin diacritics, as the
-- SQLite index does (FTS5 `unicode61 remove_diacritics 2`): "cafe" finds
-- "Café", "CRÈME" finds "crème". The document folds each accented Latin
-- letter of Latin-1 and Latin Extended-A (both cases) to its base letter
-- with `translate` (immutable and built in: no extension needed), and the
-- app folds the words of a query with the same table
-- (`catalog_core::domain::listing::FOLD_FROM` / `FOLD_TO`; a unit test
-- checks they match this file). Letters without a canonical decomposition
-- (ø, ł, đ, ß...) are kept, as FTS5 keeps them.
-- Dropping the generated column drops its index; both are rebuilt from the
-- stored names and descriptions.

ALTER TABLE products DROP COLUMN search;

ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, translate(name,
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥĤìíîïĩīĭįÌÍÎÏĨĪĬĮİĵĴķĶĺļľĹĻĽñńņňÑŃŅŇòóôõöōŏőÒÓÔÕÖŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŢŤùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ',
        'aaaaaaaaaAAAAAAAAAcccccCCCCCdDeeeeeeeeeEEEEEEEEEggggGGGGhHiiiiiiiiIIIIIIIIIjJkKlllLLLnnnnNNNNooooooooOOOOOOOOrrrRRRssssSSSSttTTuuuuuuuuuuUUUUUUUUUUwWyyyYYYzzzZZZ')), 'A') ||
    setweight(to_tsvector('simple'::regconfig, translate(description,
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥĤìíîïĩīĭįÌÍÎÏĨĪĬĮİĵĴķĶĺļľĹĻĽñńņňÑŃŅŇòóôõöōŏőÒÓÔÕÖŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŢŤùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ',
        'aaaaaaaaaAAAAAAAAAcccccCCCCCdDeeeeeeeeeEEEEEEEEEggggGGGGhHiiiiiiiiIIIIIIIIIjJkKlllLLLnnnnNNNNooooooooOOOOOOOOrrrRRRssssSSSSttTTuuuuuuuuuuUUUUUUUUUUwWyyyYYYzzzZZZ')), 'B')) STORED;

CREATE INDEX products_search ON products USING GIN (search);
