-- Search folds case beyond ASCII (SQLite's LIKE folds A-Z only): the product
-- list keeps its code and name case-folded by Python's str.casefold, registered
-- on every connection as casefold(). "žluť" finds "Žluťoučký kůň".
ALTER TABLE products ADD COLUMN code_folded TEXT;
ALTER TABLE products ADD COLUMN name_folded TEXT;
UPDATE products SET code_folded = casefold(code), name_folded = casefold(name);
