-- Catalog on Postgres, version 6: the search document is split into words
-- where the query is, at every ASCII punctuation mark, as SQLite's FTS5
-- tokenizer splits it (found in review: Postgres' parser kept `1.7`,
-- `support@acme.com`, `example.com/x` and `15/16` as single words, so
-- `1.7 litre`, whose words the app splits into `1`, `7` and `litre`, found
-- the kettle on SQLite and nothing on Postgres). `translate` turns each mark
-- into a space (immutable, no locale involved); the folding of version 2
-- is kept (`catalog_core::domain::listing::FOLD_FROM`/`FOLD_TO` and
-- `SPLIT_AT`; a unit test checks they match this file). Dropping the
-- generated column drops its index; both are rebuilt from the stored names
-- and descriptions.

ALTER TABLE products DROP COLUMN search;

ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, translate(translate(name,
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥĤìíîïĩīĭįÌÍÎÏĨĪĬĮİĵĴķĶĺļľĹĻĽñńņňÑŃŅŇòóôõöōŏőÒÓÔÕÖŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŢŤùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ',
        'aaaaaaaaaAAAAAAAAAcccccCCCCCdDeeeeeeeeeEEEEEEEEEggggGGGGhHiiiiiiiiIIIIIIIIIjJkKlllLLLnnnnNNNNooooooooOOOOOOOOrrrRRRssssSSSSttTTuuuuuuuuuuUUUUUUUUUUwWyyyYYYzzzZZZ'),
        '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~',
        '                                ')), 'A') ||
    setweight(to_tsvector('simple'::regconfig, translate(translate(description,
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥĤìíîïĩīĭįÌÍÎÏĨĪĬĮİĵĴķĶĺļľĹĻĽñńņňÑŃŅŇòóôõöōŏőÒÓÔÕÖŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŢŤùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ',
        'aaaaaaaaaAAAAAAAAAcccccCCCCCdDeeeeeeeeeEEEEEEEEEggggGGGGhHiiiiiiiiIIIIIIIIIjJkKlllLLLnnnnNNNNooooooooOOOOOOOOrrrRRRssssSSSSttTTuuuuuuuuuuUUUUUUUUUUwWyyyYYYzzzZZZ'),
        '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~',
        '                                ')), 'B')) STORED;

CREATE INDEX products_search ON products USING GIN (search);
