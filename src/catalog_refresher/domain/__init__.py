"""The catalog's data: record types, their validation, the product aggregate. No I/O."""
