-- Checkout schema on Postgres, version 4 (the SQLite version 5): invoices and credit notes. One row per
-- document, written once and never updated: its number, what it is, the
-- order, amounts for the books, and the whole document as issued (seller,
-- buyer, lines, taxes, totals). Numbers come from `document_counters`, one
-- row per series and calendar year, incremented in the transaction that
-- issues the document, so numbers are gapless and never reused.

CREATE TABLE document_counters (
    series TEXT NOT NULL,                     -- INV (invoices), CN (credit notes)
    year   BIGINT NOT NULL,
    last   BIGINT NOT NULL CHECK (last > 0),
    PRIMARY KEY (series, year)
);

CREATE TABLE invoices (
    number         TEXT PRIMARY KEY,          -- INV-2026-000042, CN-2026-000003
    kind           TEXT NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    order_id       TEXT NOT NULL REFERENCES orders (id),
    invoice_number TEXT REFERENCES invoices (number), -- a credit note: the invoice it credits
    source         TEXT NOT NULL,             -- what issued it: 'paid', or the refund ('refunded:<total>')
    issued_at      TEXT NOT NULL,
    issued_on      TEXT NOT NULL,             -- the UTC day, for the books' periods
    currency       TEXT NOT NULL,
    net_minor      BIGINT NOT NULL,
    tax_minor      BIGINT NOT NULL CHECK (tax_minor >= 0),
    total_minor    BIGINT NOT NULL CHECK (total_minor >= 0),
    document       TEXT NOT NULL,             -- JSON, as issued
    UNIQUE (kind, order_id, source)
);

CREATE INDEX invoices_period ON invoices (issued_on, number);
CREATE INDEX invoices_order ON invoices (order_id);
